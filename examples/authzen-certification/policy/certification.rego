# The fixture of the AuthZEN working group's certification scenario for
# Authorization API 1.0 PDPs, in Warden's agent model.
#
# The certification harness is the agent (`cert-harness` on platform
# `certification`, granted read, write and delete); it asks on behalf of
# the subject, a user of the directory (alice; bob, an admin). Records are
# described by the bundle's data (`records`: status and owner), or by the
# properties the PEP sends, which take precedence.
#
#   read     any known user, on any known record
#   write    an active record: its owner (alice owns both records)
#            an archived record: an admin only
#   delete   soft deletes only (action property `soft: true`), by whoever
#            may write the record; a hard delete is never permitted
#
# The subject's roles are the `role` the PEP states in the subject's
# properties, else the user's groups in the directory. So bob, an admin
# in the directory, may not write record-1 (active, alice's), but may write
# the archived record-2, with or without `role: admin` in the request.
package authzen_certification

decision := {"allow": true, "reasons": []} if {
	count(deny_reasons) == 0
} else := {"allow": false, "reasons": sort(deny_reasons)}

user := data.identity.users[input.principal.id]

agent := data.identity.agents[input.agent.id]

record := data.authzen_certification.records[input.resource.id]

roles := {role} if {
	role := input.principal.attributes.role
	is_string(role)
} else := {role | some role in user.groups}

status := input.resource.attributes.status if {
	is_string(input.resource.attributes.status)
} else := record.status

owner := input.resource.attributes.owner if {
	is_string(input.resource.attributes.owner)
} else := record.owner

# The agent: known, on its own platform, granted the action.
deny_reasons contains "agent_unknown" if not agent

deny_reasons contains "platform_mismatch" if agent.platform != input.platform

deny_reasons contains "agent_not_granted" if {
	agent
	not input.action.name in agent.grants
}

# The subject: a user of the directory.
deny_reasons contains "subject_type_unknown" if input.principal.type != "user"

deny_reasons contains "user_unknown" if not user

# The resource: a record the bundle or the request describes.
deny_reasons contains "resource_type_unknown" if input.resource.type != "record"

deny_reasons contains "record_unknown" if not status

# The action.
deny_reasons contains "action_unknown" if not input.action.name in {"read", "write", "delete"}

deny_reasons contains "hard_delete_not_permitted" if {
	input.action.name == "delete"
	not soft_delete
}

deny_reasons contains "not_the_owner" if {
	modifies
	status == "active"
	owner != input.principal.id
}

deny_reasons contains "not_the_owner" if {
	modifies
	status == "active"
	not owner
}

deny_reasons contains "archived_needs_admin" if {
	modifies
	status == "archived"
	not "admin" in roles
}

deny_reasons contains "status_not_writable" if {
	modifies
	status
	not status in {"active", "archived"}
}

modifies if input.action.name in {"write", "delete"}

soft_delete if input.action.attributes.soft == true
