# The audience's members who may not read the resource, with Warden's
# builtin: `{members, lacking_count, lacking}` (lacking: the first ten, as
# `user:ID`, sorted). It is computed from an index built once per snapshot
# generation; its definition in Rego, which OPA runs in Warden's
# differential tests, is tests/policies/audience_gaps_naive.rego.
package warden.authz

audience_gaps := warden.audience_gaps(input.audience, input.resource, read_action, data.identity, data.entitlements)
