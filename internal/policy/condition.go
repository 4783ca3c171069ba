package policy

import (
	"fmt"
	"sort"
	"strconv"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
)

// Limits on role conditions.
const (
	// maxConditionLen bounds the source text of a condition.
	maxConditionLen = 4096
	// conditionCostLimit bounds both the static cost estimate (at Compile)
	// and the actual cost of each evaluation, in CEL cost units (roughly
	// one per operation; a comparison of two short strings costs 1).
	conditionCostLimit = 100_000
	// claimSizeBound is the size (list length, string length, map entries)
	// assumed for every claim when estimating a condition's cost. GitLab
	// caps groups_direct at 200 entries; claim strings are short.
	claimSizeBound = 512
)

// condition is a compiled CEL condition over `claims`. cel.Program is safe
// for concurrent use.
type condition struct {
	src string
	prg cel.Program
}

// compileCondition parses and type-checks src, checks every claim it names
// against known (nil accepts all), estimates its cost and plans a program
// with a runtime cost limit. It returns problems without a field prefix.
func compileCondition(src string, known map[string]bool) (*condition, []string) {
	if len(src) > maxConditionLen {
		return nil, []string{fmt.Sprintf("is %d bytes long; the limit is %d", len(src), maxConditionLen)}
	}
	env, err := cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		return nil, []string{fmt.Sprintf("internal error: %v", err)}
	}
	checked, iss := env.Compile(src)
	if iss.Err() != nil {
		var problems []string
		for _, e := range iss.Errors() {
			problems = append(problems, fmt.Sprintf("%s (line %d, column %d)",
				e.Message, e.Location.Line(), e.Location.Column()+1))
		}
		return nil, problems
	}
	var problems []string
	if out := checked.OutputType(); !out.IsExactType(types.BoolType) && out.Kind() != types.DynKind {
		problems = append(problems, fmt.Sprintf("has type %s; a condition must be a bool", out))
	}
	problems = append(problems, checkConditionClaims(checked.NativeRep(), known)...)
	est, err := env.EstimateCost(checked, claimSizeEstimator{})
	if err != nil {
		problems = append(problems, fmt.Sprintf("cannot estimate cost: %v", err))
	} else if est.Max > conditionCostLimit {
		problems = append(problems, fmt.Sprintf(
			"estimated cost %d exceeds the limit %d (assuming claims of up to %d items or characters); simplify it, for example avoid nested loops over lists",
			est.Max, conditionCostLimit, claimSizeBound))
	}
	if len(problems) > 0 {
		return nil, problems
	}
	prg, err := env.Program(checked,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(conditionCostLimit),
	)
	if err != nil {
		return nil, []string{fmt.Sprintf("cannot plan: %v", err)}
	}
	return &condition{src: src, prg: prg}, nil
}

// checkConditionClaims walks the checked AST and reports every claim the
// expression names (claims.X, claims["X"], has(claims.X), "X" in claims)
// that is not known, and every computed key, which cannot be checked.
func checkConditionClaims(a *celast.AST, known map[string]bool) []string {
	if known == nil {
		return nil
	}
	isClaims := func(e celast.Expr) bool {
		return e.Kind() == celast.IdentKind && e.AsIdent() == "claims"
	}
	unknown := map[string]bool{}
	computed := false
	note := func(key celast.Expr) {
		if key.Kind() != celast.LiteralKind {
			computed = true
			return
		}
		s, ok := key.AsLiteral().(types.String)
		if !ok {
			unknown[fmt.Sprint(key.AsLiteral().Value())] = true
			return
		}
		if !known[string(s)] {
			unknown[string(s)] = true
		}
	}
	for _, e := range celast.MatchDescendants(celast.NavigateAST(a), celast.AllMatcher()) {
		switch e.Kind() {
		case celast.SelectKind:
			if sel := e.AsSelect(); isClaims(sel.Operand()) && !known[sel.FieldName()] {
				unknown[sel.FieldName()] = true
			}
		case celast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if len(args) != 2 {
				continue
			}
			switch call.FunctionName() {
			case operators.Index, operators.OptIndex, operators.OptSelect:
				if isClaims(args[0]) {
					note(args[1])
				}
			case operators.In:
				if isClaims(args[1]) {
					note(args[0])
				}
			}
		}
	}
	var problems []string
	names := make([]string, 0, len(unknown))
	for n := range unknown {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		problems = append(problems, fmt.Sprintf("claims.%s: %s is not a known claim", n, strconv.Quote(n)))
	}
	if computed {
		problems = append(problems, `indexes claims with a computed key, which cannot be checked against the known claims; write claims.NAME or claims["NAME"]`)
	}
	return problems
}

// claimSizeEstimator bounds the size of every value reachable from
// `claims` for the static cost estimate.
type claimSizeEstimator struct{}

func (claimSizeEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if p := n.Path(); len(p) > 0 && p[0] == "claims" {
		return &cost.SizeEstimate{Min: 0, Max: claimSizeBound}
	}
	return nil
}

func (claimSizeEstimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// claimsActivation binds the variable `claims` without allocating.
type claimsActivation struct{ claims map[string]any }

func (a claimsActivation) ResolveName(name string) (any, bool) {
	if name == "claims" {
		return a.claims, true
	}
	return nil, false
}

func (claimsActivation) Parent() cel.Activation { return nil }

// eval runs the condition. Any evaluation error (a missing key, a type
// mismatch, the cost limit) makes it false, with the error as the detail.
func (c *condition) eval(claims map[string]any) (bool, string) {
	if claims == nil {
		claims = map[string]any{}
	}
	out, _, err := c.prg.Eval(claimsActivation{claims: claims})
	if err != nil {
		return false, "evaluation error: " + err.Error()
	}
	b, ok := out.Value().(bool)
	switch {
	case !ok:
		return false, fmt.Sprintf("condition returned %s, not a bool", out.Type().TypeName())
	case !b:
		return false, "condition is false"
	}
	return true, "condition is true"
}
