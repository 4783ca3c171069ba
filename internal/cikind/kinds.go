package cikind

import "strings"

// kinds lists every kind, in the order docs and messages list them; the
// generic kind comes last. To add a kind, write its file and add it here.
var kinds = [...]*Kind{
	&gitLab,
	&gitHub,
	&kubernetes,
	&circleCI,
	&generic,
}

// Lookup returns the kind called name, or nil if there is none.
func Lookup(name string) *Kind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// Of returns the kind called name, or the generic kind when there is
// none: an unknown kind knows nothing beyond what every JWT carries.
func Of(name string) *Kind {
	if k := Lookup(name); k != nil {
		return k
	}
	return &generic
}

// All returns every kind, in the order docs list them.
func All() []*Kind { return append([]*Kind(nil), kinds[:]...) }

// Names returns the name of every kind, in the order docs list them.
func Names() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return names
}

// NameList returns the kind names as an English list: "a, b or c".
func NameList() string {
	names := Names()
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
