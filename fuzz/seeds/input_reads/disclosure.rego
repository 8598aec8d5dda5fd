# Disclosure: an action that shows its result to other people (posting,
# sharing, sending, publishing: data.warden.config.disclosure_actions) is
# allowed only if everyone in its audience may read the resource it draws on,
# under the same entitlement model as the principal. The read action for a
# resource type is data.warden.config.read_actions[type], else `<type>.read`.
package warden.authz

disclosing if {
	patterns := action_patterns
	some pattern in data.warden.config.disclosure_actions
	patterns[pattern]
}

audience_size := count(object.get(input, "audience", []))

# One entry into deny_reasons for all of disclosure, so that a check that
# discloses nothing pays for one rule call, not one per reason.
deny_reasons contains reason if {
	disclosing
	some reason in audience_reasons
}

# Platforms must say who will see it.
audience_reasons contains "audience_missing" if audience_size == 0

audience_reasons contains "audience_unknown" if {
	some entry in input.audience
	audience_unknown(entry)
}

audience_unknown(entry) if {
	startswith(entry, "user:")
	not data.identity.users[substring(entry, 5, -1)]
}

audience_unknown(entry) if {
	startswith(entry, "group:")
	not data.identity.groups[substring(entry, 6, -1)]
}

# Nobody outside the organisation has entitlements, so only a resource
# marked public may reach them.
audience_reasons contains "audience_external" if {
	some entry in input.audience
	audience_outside(entry)
	not resource_public
}

audience_outside(entry) if entry == "public"

audience_outside(entry) if startswith(entry, "external:")

resource_public if input.resource.attributes.classification == "public"

# Denies unless the gaps were computed and are empty: a failed computation
# must not read as "nobody lacks access".
audience_reasons contains "audience_not_entitled" if {
	audience_size > 0
	not audience_entitled
}

audience_entitled if audience_gaps.lacking_count == 0

# What a denial names: how many members lack access, and the first of them.
audience_report := audience_gaps if {
	disclosing
	audience_size > 0
	audience_gaps.lacking_count > 0
}

read_action := object.get(
	object.get(data.warden.config, "read_actions", {}),
	input.resource.type,
	concat(".", [input.resource.type, "read"]),
)
