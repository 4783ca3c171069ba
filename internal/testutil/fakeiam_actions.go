package testutil

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// act runs one authenticated IAM action on the fake's state and returns
// the answer, or an IAM error. The state lock is held throughout: every
// action is atomic, as far as callers can tell.
func (h *FakeIAMHandler) act(req *IAMRequest, reqID string) ([]byte, string, *QueryError) {
	now := h.cfg.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.Action == ActionCreateAccessKey {
		return h.createAccessKey(req, reqID, now)
	}
	if action, ok := userActions[req.Action]; ok {
		out, e := h.forUser(req, func(u *iamUser) ([]byte, *QueryError) { return action(h, u, req, reqID, now) })
		return out, "", e
	}
	if action, ok := otherActions[req.Action]; ok {
		out, e := action(h, req, reqID, now)
		return out, "", e
	}
	return nil, "", &QueryError{Code: "InvalidAction", Message: "Could not find operation " + req.Action + " for version " + iamVersion}
}

// userActions are the actions on the user that UserName names, which must
// exist.
var userActions = map[string]func(h *FakeIAMHandler, u *iamUser, req *IAMRequest, reqID string, now time.Time) ([]byte, *QueryError){
	ActionTagUser:                         (*FakeIAMHandler).tagUser,
	ActionListUserTags:                    (*FakeIAMHandler).listUserTags,
	ActionDeleteUser:                      (*FakeIAMHandler).deleteUser,
	ActionPutUserPolicy:                   (*FakeIAMHandler).putUserPolicy,
	ActionListUserPolicies:                (*FakeIAMHandler).listUserPolicies,
	ActionDeleteUserPolicy:                (*FakeIAMHandler).deleteUserPolicy,
	ActionAttachUserPolicy:                (*FakeIAMHandler).attachUserPolicy,
	ActionListAttachedUserPolicies:        (*FakeIAMHandler).listAttachedUserPolicies,
	ActionDetachUserPolicy:                (*FakeIAMHandler).detachUserPolicy,
	ActionListGroupsForUser:               (*FakeIAMHandler).listGroupsForUser,
	ActionCreateLoginProfile:              (*FakeIAMHandler).createLoginProfile,
	ActionDeleteLoginProfile:              (*FakeIAMHandler).deleteLoginProfile,
	ActionListAccessKeys:                  (*FakeIAMHandler).listAccessKeys,
	ActionDeleteAccessKey:                 (*FakeIAMHandler).deleteAccessKey,
	ActionListMFADevices:                  (*FakeIAMHandler).listExtras,
	ActionListSigningCertificates:         (*FakeIAMHandler).listExtras,
	ActionListSSHPublicKeys:               (*FakeIAMHandler).listExtras,
	ActionListServiceSpecificCredentials:  (*FakeIAMHandler).listExtras,
	ActionDeactivateMFADevice:             (*FakeIAMHandler).deleteExtra,
	ActionDeleteSigningCertificate:        (*FakeIAMHandler).deleteExtra,
	ActionDeleteSSHPublicKey:              (*FakeIAMHandler).deleteExtra,
	ActionDeleteServiceSpecificCredential: (*FakeIAMHandler).deleteExtra,
}

// otherActions are the actions on no particular existing user but
// CreateAccessKey, which act answers itself (it issues a key).
var otherActions = map[string]func(h *FakeIAMHandler, req *IAMRequest, reqID string, now time.Time) ([]byte, *QueryError){
	ActionCreateUser:          (*FakeIAMHandler).createUser,
	ActionGetUser:             (*FakeIAMHandler).getUser,
	ActionListUsers:           (*FakeIAMHandler).listUsers,
	ActionCreateGroup:         (*FakeIAMHandler).createGroup,
	ActionAddUserToGroup:      (*FakeIAMHandler).addUserToGroup,
	ActionRemoveUserFromGroup: (*FakeIAMHandler).removeUserFromGroup,
	ActionPutRolePolicy:       (*FakeIAMHandler).putRolePolicy,
	ActionGetRolePolicy:       (*FakeIAMHandler).getRolePolicy,
	ActionDeleteRolePolicy:    (*FakeIAMHandler).deleteRolePolicy,
	ActionListRolePolicies:    (*FakeIAMHandler).listRolePolicies,
}

// forUser runs an action on the user the request names, or answers
// NoSuchEntity.
func (h *FakeIAMHandler) forUser(req *IAMRequest, action func(u *iamUser) ([]byte, *QueryError)) ([]byte, *QueryError) {
	u, e := h.user(req)
	if e != nil {
		return nil, e
	}
	return action(u)
}

// user finds the user a request names, or answers NoSuchEntity.
func (h *FakeIAMHandler) user(req *IAMRequest) (*iamUser, *QueryError) {
	if req.UserName == "" {
		return nil, validationError(null, "userName", "not be null")
	}
	u := h.users[strings.ToLower(req.UserName)]
	if u == nil {
		return nil, noSuchUser(req.UserName)
	}
	return u, nil
}

// iamResult answers action with one element, el, whose content fill
// appends at indent "      ".
func iamResult(action, reqID, el string, fill func(buf []byte) []byte) []byte {
	buf := iamOpen(action)
	buf = append(buf, "    <"+el+">\n"...)
	buf = fill(buf)
	buf = append(buf, "    </"+el+">\n"...)
	return appendClose(buf, action, reqID)
}

// listResult answers a List action with the page req asks for of n items
// sorted by key: the members of element list, member appending item i's
// content at indent "        ".
func (h *FakeIAMHandler) listResult(req *IAMRequest, reqID, list string, n int, key func(int) string, member func(buf []byte, i int) []byte) ([]byte, *QueryError) {
	start, end, next, e := pageOf(req.Params, h.cfg.maxPage, n, key)
	if e != nil {
		return nil, e
	}
	buf := iamOpen(req.Action)
	buf = append(buf, "    <"+list+">\n"...)
	for i := start; i < end; i++ {
		buf = append(buf, "      <member>\n"...)
		buf = member(buf, i)
		buf = append(buf, "      </member>\n"...)
	}
	buf = append(buf, "    </"+list+">\n"...)
	buf = appendTruncation(buf, next)
	return appendClose(buf, req.Action, reqID), nil
}

// addCapped adds s to the sorted list, which IAM's quota allows to hold
// max items; adding an item already there succeeds (IAM is idempotent
// there) whatever the quota.
func addCapped(list *[]string, s, quota string, max int) *QueryError {
	if _, found := slices.BinarySearch(*list, s); found {
		return nil
	}
	if len(*list) >= max {
		return limitExceeded(quota, max)
	}
	*list = insertSorted(*list, s)
	return nil
}

// reqPath is the request's Path, "/" when absent, or a ValidationError.
func reqPath(req *IAMRequest) (string, *QueryError) {
	path := "/"
	if _, ok := req.Params["Path"]; ok {
		path = req.Path
	}
	if !iamPathOK(path) {
		return "", validationError(path, "path", `satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)`)
	}
	return path, nil
}

func (h *FakeIAMHandler) policyExists(arn string) bool {
	return strings.HasPrefix(arn, "arn:aws:iam::aws:policy/") || h.policies[arn]
}

func (h *FakeIAMHandler) createUser(req *IAMRequest, reqID string, now time.Time) ([]byte, *QueryError) {
	name := req.UserName
	if !iamNameOK(name, 64) {
		return nil, validationError(name, "userName", `satisfy regular expression pattern: [\w+=,.@-]+ and have length between 1 and 64`)
	}
	path, e := reqPath(req)
	if e != nil {
		return nil, e
	}
	if e := validateTags(req.Tags); e != nil {
		return nil, e
	}
	if b := req.PermissionsBoundary; b != "" {
		if _, ok := parsePolicyARN(b); !ok {
			return nil, &QueryError{Code: "InvalidInput", Message: "ARN " + b + " is not valid."}
		}
		if !h.policyExists(b) {
			return nil, &QueryError{Code: "NoSuchEntity", Message: "Scope ARN: " + b + " does not exist or is not attachable."}
		}
	}
	key := strings.ToLower(name)
	if h.users[key] != nil {
		return nil, &QueryError{Code: "EntityAlreadyExists", Message: "User with name " + name + " already exists."}
	}
	u := &iamUser{
		name: name, path: path, arn: "arn:aws:iam::" + h.cfg.account + ":user" + path + name,
		id: newUniqueID("AIDA"), created: now.UTC().Truncate(time.Second),
		boundary: req.PermissionsBoundary, tags: slices.Clone(req.Tags), inline: make(map[string]string),
	}
	h.users[key] = u
	h.userKeys = insertSorted(h.userKeys, key)

	return iamResult(ActionCreateUser, reqID, "User", func(buf []byte) []byte { return appendUser(buf, "      ", u, true) }), nil
}

func (h *FakeIAMHandler) getUser(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	u := h.adminUser // no UserName: the caller
	if req.UserName != "" {
		var e *QueryError
		if u, e = h.user(req); e != nil {
			return nil, e
		}
	}
	return iamResult(ActionGetUser, reqID, "User", func(buf []byte) []byte { return appendUser(buf, "      ", u, true) }), nil
}

func (h *FakeIAMHandler) listUsers(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	prefix := req.Params.Get("PathPrefix")
	if prefix == "" {
		prefix = "/"
	}
	if prefix[0] != '/' || len(prefix) > 512 {
		return nil, validationError(prefix, "pathPrefix", `satisfy regular expression pattern: \u002F[\u0021-\u007F]*`)
	}
	var match []*iamUser
	var keys []string
	for _, k := range h.userKeys {
		if u := h.users[k]; strings.HasPrefix(u.path, prefix) {
			match = append(match, u)
			keys = append(keys, k)
		}
	}
	return h.listResult(req, reqID, "Users", len(match), func(i int) string { return keys[i] }, func(buf []byte, i int) []byte {
		return appendUser(buf, "        ", match[i], false)
	})
}

func (h *FakeIAMHandler) tagUser(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	if len(req.Tags) == 0 {
		return nil, validationError(null, "tags", "not be null")
	}
	if e := validateTags(req.Tags); e != nil {
		return nil, e
	}
	tags := slices.Clone(u.tags)
next:
	for _, t := range req.Tags {
		for i := range tags {
			if strings.EqualFold(tags[i].Key, t.Key) {
				tags[i] = t
				continue next
			}
		}
		tags = append(tags, t)
	}
	if len(tags) > IAMMaxTagsPerUser {
		return nil, &QueryError{Code: "LimitExceeded", Message: "The number of tags has reached the maximum limit."}
	}
	u.tags = tags
	return iamEmpty(ActionTagUser, reqID), nil
}

func (h *FakeIAMHandler) listUserTags(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	start, end, next, e := pageOf(req.Params, h.cfg.maxPage, len(u.tags), indexKey)
	if e != nil {
		return nil, e
	}
	buf := iamOpen(ActionListUserTags)
	buf = appendTags(buf, "    ", u.tags[start:end])
	buf = appendTruncation(buf, next)
	return appendClose(buf, ActionListUserTags, reqID), nil
}

// deleteConflict is AWS's rule: a user can only be deleted once nothing
// hangs off it.
func deleteConflict(u *iamUser) *QueryError {
	what := ""
	switch {
	case len(u.keys) > 0:
		what = "must delete access keys first."
	case len(u.inline) > 0:
		what = "must delete policies first."
	case len(u.attached) > 0:
		what = "must detach all policies first."
	case len(u.groups) > 0:
		what = "must remove users from group first."
	case u.extras.LoginProfile:
		what = "must delete login profile first."
	case len(u.extras.MFADevices) > 0:
		what = "must delete MFA device first."
	case len(u.extras.SigningCertificates) > 0:
		what = "must delete signing certificate first."
	case len(u.extras.SSHPublicKeys) > 0:
		what = "must delete SSH public key first."
	case len(u.extras.ServiceSpecificCredentials) > 0:
		what = "must delete service specific credentials first."
	default:
		return nil
	}
	return &QueryError{Code: "DeleteConflict", Message: "Cannot delete entity, " + what}
}

func (h *FakeIAMHandler) deleteUser(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	if e := deleteConflict(u); e != nil {
		return nil, e
	}
	key := strings.ToLower(u.name)
	delete(h.users, key)
	h.userKeys, _ = removeSorted(h.userKeys, key)
	return iamEmpty(ActionDeleteUser, reqID), nil
}

func checkPolicy(req *IAMRequest) *QueryError {
	if !iamNameOK(req.PolicyName, 128) {
		return validationError(req.PolicyName, "policyName", `satisfy regular expression pattern: [\w+=,.@-]+ and have length between 1 and 128`)
	}
	if _, ok := req.Params["PolicyDocument"]; !ok {
		return validationError(null, "policyDocument", "not be null")
	}
	if len(req.PolicyDocument) > 131072 {
		return validationError("…", "policyDocument", "have length less than or equal to 131072")
	}
	if !json.Valid([]byte(req.PolicyDocument)) {
		return errMalformedPolicy
	}
	return nil
}

// putInline stores the request's policy among the inline policies of
// owner ("user NAME", "role NAME"), which may hold limit characters in all.
func putInline(policies map[string]string, req *IAMRequest, limit int, owner string) *QueryError {
	if e := checkPolicy(req); e != nil {
		return e
	}
	if inlineSize(policies, req.PolicyName, req.PolicyDocument) > limit {
		return &QueryError{Code: "LimitExceeded", Message: "Maximum policy size of " + strconv.Itoa(limit) + " bytes exceeded for " + owner}
	}
	policies[req.PolicyName] = req.PolicyDocument
	return nil
}

// inlineSize is the aggregate size of policies with doc replacing name.
func inlineSize(policies map[string]string, name, doc string) int {
	n := policySize(doc)
	for k, v := range policies {
		if k != name {
			n += policySize(v)
		}
	}
	return n
}

func (h *FakeIAMHandler) putUserPolicy(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	if e := putInline(u.inline, req, IAMMaxUserInlinePolicySize, "user "+u.name); e != nil {
		return nil, e
	}
	return iamEmpty(ActionPutUserPolicy, reqID), nil
}

// listPolicyNames answers a List action with a page of the names of the
// inline policies p.
func (h *FakeIAMHandler) listPolicyNames(req *IAMRequest, reqID string, p map[string]string) ([]byte, *QueryError) {
	names := sortedKeys(p)
	start, end, next, e := pageOf(req.Params, h.cfg.maxPage, len(names), func(i int) string { return names[i] })
	if e != nil {
		return nil, e
	}
	buf := iamOpen(req.Action)
	buf = append(buf, "    <PolicyNames>\n"...)
	for _, n := range names[start:end] {
		buf = appendEl(buf, "      ", "member", n)
	}
	buf = append(buf, "    </PolicyNames>\n"...)
	buf = appendTruncation(buf, next)
	return appendClose(buf, req.Action, reqID), nil
}

func (h *FakeIAMHandler) listUserPolicies(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	return h.listPolicyNames(req, reqID, u.inline)
}

func (h *FakeIAMHandler) deleteUserPolicy(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	if _, ok := u.inline[req.PolicyName]; !ok {
		return nil, &QueryError{Code: "NoSuchEntity", Message: "The user policy with name " + req.PolicyName + " cannot be found."}
	}
	delete(u.inline, req.PolicyName)
	return iamEmpty(ActionDeleteUserPolicy, reqID), nil
}

func (h *FakeIAMHandler) attachUserPolicy(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	arn := req.PolicyARN
	if _, ok := parsePolicyARN(arn); !ok {
		return nil, &QueryError{Code: "InvalidInput", Message: "ARN " + arn + " is not valid."}
	}
	if !h.policyExists(arn) {
		return nil, &QueryError{Code: "NoSuchEntity", Message: "Policy " + arn + " does not exist or is not attachable."}
	}
	if e := addCapped(&u.attached, arn, "PoliciesPerUser", IAMMaxManagedPoliciesPerUser); e != nil {
		return nil, e
	}
	return iamEmpty(ActionAttachUserPolicy, reqID), nil
}

func (h *FakeIAMHandler) listAttachedUserPolicies(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	return h.listResult(req, reqID, "AttachedPolicies", len(u.attached), func(i int) string { return u.attached[i] }, func(buf []byte, i int) []byte {
		arn := u.attached[i]
		name, _ := parsePolicyARN(arn)
		buf = appendEl(buf, "        ", "PolicyName", name)
		return appendEl(buf, "        ", "PolicyArn", arn)
	})
}

func (h *FakeIAMHandler) detachUserPolicy(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	var found bool
	if u.attached, found = removeSorted(u.attached, req.PolicyARN); !found {
		return nil, &QueryError{Code: "NoSuchEntity", Message: "Policy " + req.PolicyARN + " was not found."}
	}
	return iamEmpty(ActionDetachUserPolicy, reqID), nil
}

func (h *FakeIAMHandler) createGroup(req *IAMRequest, reqID string, now time.Time) ([]byte, *QueryError) {
	name := req.GroupName
	if !iamNameOK(name, 128) {
		return nil, validationError(name, "groupName", `satisfy regular expression pattern: [\w+=,.@-]+`)
	}
	path, e := reqPath(req)
	if e != nil {
		return nil, e
	}
	key := strings.ToLower(name)
	if h.groups[key] != nil {
		return nil, &QueryError{Code: "EntityAlreadyExists", Message: "Group with name " + name + " already exists."}
	}
	g := h.newGroup(name, path, now.UTC().Truncate(time.Second))
	h.groups[key] = g
	return iamResult(ActionCreateGroup, reqID, "Group", func(buf []byte) []byte { return appendGroup(buf, "      ", g) }), nil
}

func appendGroup(buf []byte, indent string, g *iamGroup) []byte {
	buf = appendEl(buf, indent, "Path", g.path)
	buf = appendEl(buf, indent, "GroupName", g.name)
	buf = appendEl(buf, indent, "GroupId", g.id)
	buf = appendEl(buf, indent, "Arn", g.arn)
	return appendTimeEl(buf, indent, "CreateDate", g.created)
}

func (h *FakeIAMHandler) group(req *IAMRequest) (string, *QueryError) {
	key := strings.ToLower(req.GroupName)
	if h.groups[key] == nil {
		return "", &QueryError{Code: "NoSuchEntity", Message: "The group with name " + req.GroupName + " cannot be found."}
	}
	return key, nil
}

// groupAndUser finds the group and then the user a request names.
func (h *FakeIAMHandler) groupAndUser(req *IAMRequest) (string, *iamUser, *QueryError) {
	gk, e := h.group(req)
	if e != nil {
		return "", nil, e
	}
	u, e := h.user(req)
	return gk, u, e
}

func (h *FakeIAMHandler) addUserToGroup(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	gk, u, e := h.groupAndUser(req)
	if e != nil {
		return nil, e
	}
	if e := addCapped(&u.groups, gk, "GroupsPerUser", IAMMaxGroupsPerUser); e != nil {
		return nil, e
	}
	return iamEmpty(ActionAddUserToGroup, reqID), nil
}

func (h *FakeIAMHandler) listGroupsForUser(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	return h.listResult(req, reqID, "Groups", len(u.groups), func(i int) string { return u.groups[i] }, func(buf []byte, i int) []byte {
		return appendGroup(buf, "        ", h.groups[u.groups[i]])
	})
}

func (h *FakeIAMHandler) removeUserFromGroup(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	gk, u, e := h.groupAndUser(req)
	if e != nil {
		return nil, e
	}
	var found bool
	if u.groups, found = removeSorted(u.groups, gk); !found {
		return nil, &QueryError{Code: "NoSuchEntity", Message: "User " + u.name + " is not in group " + h.groups[gk].name + "."}
	}
	return iamEmpty(ActionRemoveUserFromGroup, reqID), nil
}

func (h *FakeIAMHandler) createLoginProfile(u *iamUser, req *IAMRequest, reqID string, now time.Time) ([]byte, *QueryError) {
	if req.Params.Get("Password") == "" {
		return nil, validationError(null, "password", "not be null")
	}
	if u.extras.LoginProfile {
		return nil, &QueryError{Code: "EntityAlreadyExists", Message: "Login Profile for user " + u.name + " already exists."}
	}
	u.extras.LoginProfile = true
	return iamResult(ActionCreateLoginProfile, reqID, "LoginProfile", func(buf []byte) []byte {
		buf = appendEl(buf, "      ", "UserName", u.name)
		buf = appendTimeEl(buf, "      ", "CreateDate", now)
		return appendEl(buf, "      ", "PasswordResetRequired", "false")
	}), nil
}

func (h *FakeIAMHandler) deleteLoginProfile(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	if !u.extras.LoginProfile {
		return nil, &QueryError{Code: "NoSuchEntity", Message: "Login Profile for User " + u.name + " cannot be found."}
	}
	u.extras.LoginProfile = false
	return iamEmpty(ActionDeleteLoginProfile, reqID), nil
}

func (h *FakeIAMHandler) createAccessKey(req *IAMRequest, reqID string, now time.Time) ([]byte, string, *QueryError) {
	if req.UserName == "" {
		return nil, "", &QueryError{Code: "ValidationError", Message: "fake IAM: CreateAccessKey needs a UserName (keys for the caller are not modelled)"}
	}
	u, e := h.user(req)
	if e != nil {
		return nil, "", e
	}
	if len(u.keys) >= IAMMaxAccessKeysPerUser {
		return nil, "", limitExceeded("AccessKeysPerUser", IAMMaxAccessKeysPerUser)
	}
	k := &iamKey{id: newKeyID("AKIA"), secret: newSecretKey(), status: "Active", created: now.UTC().Truncate(time.Second), usableAt: now.Add(h.cfg.keyDelay), user: u}
	u.keys = append(u.keys, k)
	h.keys[k.id] = k
	return iamResult(ActionCreateAccessKey, reqID, "AccessKey", func(buf []byte) []byte {
		buf = appendEl(buf, "      ", "UserName", u.name)
		buf = appendEl(buf, "      ", "AccessKeyId", k.id)
		buf = appendEl(buf, "      ", "Status", k.status)
		buf = appendEl(buf, "      ", "SecretAccessKey", k.secret)
		return appendTimeEl(buf, "      ", "CreateDate", k.created)
	}), k.id, nil
}

func (h *FakeIAMHandler) listAccessKeys(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	return h.listResult(req, reqID, "AccessKeyMetadata", len(u.keys), indexKey, func(buf []byte, i int) []byte {
		k := u.keys[i]
		buf = appendEl(buf, "        ", "UserName", u.name)
		buf = appendEl(buf, "        ", "AccessKeyId", k.id)
		buf = appendEl(buf, "        ", "Status", k.status)
		return appendTimeEl(buf, "        ", "CreateDate", k.created)
	})
}

func (h *FakeIAMHandler) deleteAccessKey(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	k := h.keys[req.AccessKeyID]
	if k == nil || k.user != u {
		return nil, &QueryError{Code: "NoSuchEntity", Message: "The Access Key with id " + req.AccessKeyID + " cannot be found."}
	}
	delete(h.keys, k.id)
	u.keys = slices.DeleteFunc(u.keys, func(x *iamKey) bool { return x == k })
	return iamEmpty(ActionDeleteAccessKey, reqID), nil
}

// extraKind describes one kind of IAMUserExtras list for its list and
// delete actions.
type extraKind struct {
	listAction, deleteAction string
	list                     func(*IAMUserExtras) *[]string
	listEl                   string // the list element of the List answer
	idParam                  string // the id parameter of the Delete action
	idEl                     string // the id element of a member
	notFound                 string // message prefix for NoSuchEntity
	dateEl                   string
	extraEls                 [][2]string
	hasStatus                bool
}

var extraKinds = byAction([]extraKind{
	{
		listAction: ActionListMFADevices, deleteAction: ActionDeactivateMFADevice,
		list:   func(x *IAMUserExtras) *[]string { return &x.MFADevices },
		listEl: "MFADevices", idEl: "SerialNumber", dateEl: "EnableDate",
		idParam: "SerialNumber", notFound: "MFA Device with serial number ",
	},
	{
		listAction: ActionListSigningCertificates, deleteAction: ActionDeleteSigningCertificate,
		list:   func(x *IAMUserExtras) *[]string { return &x.SigningCertificates },
		listEl: "Certificates", idEl: "CertificateId", dateEl: "UploadDate", hasStatus: true,
		extraEls: [][2]string{{"CertificateBody", "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----"}},
		idParam:  "CertificateId", notFound: "The Certificate with id ",
	},
	{
		listAction: ActionListSSHPublicKeys, deleteAction: ActionDeleteSSHPublicKey,
		list:   func(x *IAMUserExtras) *[]string { return &x.SSHPublicKeys },
		listEl: "SSHPublicKeys", idEl: "SSHPublicKeyId", dateEl: "UploadDate", hasStatus: true,
		idParam: "SSHPublicKeyId", notFound: "The Public Key with id ",
	},
	{
		listAction: ActionListServiceSpecificCredentials, deleteAction: ActionDeleteServiceSpecificCredential,
		list:   func(x *IAMUserExtras) *[]string { return &x.ServiceSpecificCredentials },
		listEl: "ServiceSpecificCredentials", idEl: "ServiceSpecificCredentialId", dateEl: "CreateDate", hasStatus: true,
		extraEls: [][2]string{{"ServiceName", "codecommit.amazonaws.com"}, {"ServiceUserName", "fake-at-123456789012"}},
		idParam:  "ServiceSpecificCredentialId", notFound: "The Service Specific Credential with id ",
	},
})

// byAction indexes kinds by their list and their delete action.
func byAction(kinds []extraKind) map[string]extraKind {
	m := make(map[string]extraKind, 2*len(kinds))
	for _, k := range kinds {
		m[k.listAction], m[k.deleteAction] = k, k
	}
	return m
}

func (h *FakeIAMHandler) listExtras(u *iamUser, req *IAMRequest, reqID string, now time.Time) ([]byte, *QueryError) {
	k := extraKinds[req.Action]
	ids := *k.list(&u.extras)
	return h.listResult(req, reqID, k.listEl, len(ids), indexKey, func(buf []byte, i int) []byte {
		buf = appendEl(buf, "        ", "UserName", u.name)
		buf = appendEl(buf, "        ", k.idEl, ids[i])
		if k.hasStatus {
			buf = appendEl(buf, "        ", "Status", "Active")
		}
		for _, kv := range k.extraEls {
			buf = appendEl(buf, "        ", kv[0], kv[1])
		}
		return appendTimeEl(buf, "        ", k.dateEl, now)
	})
}

func (h *FakeIAMHandler) deleteExtra(u *iamUser, req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	k := extraKinds[req.Action]
	id := req.Params.Get(k.idParam)
	list := k.list(&u.extras)
	i := slices.Index(*list, id)
	if i < 0 {
		return nil, &QueryError{Code: "NoSuchEntity", Message: k.notFound + id + " cannot be found."}
	}
	*list = slices.Delete(*list, i, i+1)
	return iamEmpty(req.Action, reqID), nil
}

func (h *FakeIAMHandler) role(req *IAMRequest) (*iamRole, *QueryError) {
	if req.RoleName == "" {
		return nil, validationError(null, "roleName", "not be null")
	}
	r := h.roles[strings.ToLower(req.RoleName)]
	if r == nil {
		return nil, &QueryError{Code: "NoSuchEntity", Message: "The role with name " + req.RoleName + " cannot be found."}
	}
	return r, nil
}

func (h *FakeIAMHandler) putRolePolicy(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	r, e := h.role(req)
	if e != nil {
		return nil, e
	}
	if e := putInline(r.policies, req, IAMMaxRoleInlinePolicySize, "role "+r.name); e != nil {
		return nil, e
	}
	return iamEmpty(ActionPutRolePolicy, reqID), nil
}

func (h *FakeIAMHandler) rolePolicy(req *IAMRequest) (*iamRole, string, *QueryError) {
	r, e := h.role(req)
	if e != nil {
		return nil, "", e
	}
	doc, ok := r.policies[req.PolicyName]
	if !ok {
		return nil, "", &QueryError{Code: "NoSuchEntity", Message: "The role policy with name " + req.PolicyName + " cannot be found."}
	}
	return r, doc, nil
}

func (h *FakeIAMHandler) getRolePolicy(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	r, doc, e := h.rolePolicy(req)
	if e != nil {
		return nil, e
	}
	buf := iamOpen(ActionGetRolePolicy)
	buf = appendEl(buf, "    ", "RoleName", r.name)
	buf = appendEl(buf, "    ", "PolicyName", req.PolicyName)
	buf = appendEl(buf, "    ", "PolicyDocument", iamPolicyEscape(doc))
	return appendClose(buf, ActionGetRolePolicy, reqID), nil
}

func (h *FakeIAMHandler) deleteRolePolicy(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	r, _, e := h.rolePolicy(req)
	if e != nil {
		return nil, e
	}
	delete(r.policies, req.PolicyName)
	return iamEmpty(ActionDeleteRolePolicy, reqID), nil
}

func (h *FakeIAMHandler) listRolePolicies(req *IAMRequest, reqID string, _ time.Time) ([]byte, *QueryError) {
	r, e := h.role(req)
	if e != nil {
		return nil, e
	}
	return h.listPolicyNames(req, reqID, r.policies)
}
