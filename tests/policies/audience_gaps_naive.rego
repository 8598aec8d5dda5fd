# The definition `warden.audience_gaps` must equal, written the slow way:
# expand every group by scanning the users, and test each member's
# entitlements exactly as the default policy tests the principal's. The
# differential tests give OPA this module in place of disclosure_gaps.rego.
package warden.authz

audience_gaps := {
	"members": count(naive_members),
	"lacking_count": count(naive_lacking),
	"lacking": array.slice(sort(naive_lacking), 0, 10),
}

naive_members contains id if {
	some entry in input.audience
	startswith(entry, "user:")
	id := substring(entry, 5, -1)
	data.identity.users[id]
}

naive_members contains id if {
	some entry in input.audience
	startswith(entry, "group:")
	group := substring(entry, 6, -1)
	some id, user in data.identity.users
	some g in user.groups
	g == group
}

naive_lacking contains concat("", ["user:", id]) if {
	some id in naive_members
	not naive_can_read(id)
}

naive_read_patterns contains read_action

naive_read_patterns contains "*"

naive_read_patterns contains concat(".", array.concat(array.slice(parts, 0, i), ["*"])) if {
	parts := split(read_action, ".")
	some i, _ in parts
	i > 0
}

naive_read_patterns contains concat(".", array.concat(["*"], array.slice(parts, i, count(parts)))) if {
	parts := split(read_action, ".")
	some i, _ in parts
	i > 0
}

naive_subjects(id) := {concat("", ["user:", id])} | {s |
	some g in data.identity.users[id].groups
	s := concat("", ["group:", g])
}

naive_can_read(id) if {
	some subject in naive_subjects(id)
	some pattern in data.entitlements.subjects[subject][input.resource.type]["*"]
	naive_read_patterns[pattern]
}

naive_can_read(id) if {
	some subject in naive_subjects(id)
	some pattern in data.entitlements.subjects[subject][input.resource.type][input.resource.id]
	naive_read_patterns[pattern]
}
