# The AuthZEN "Todo" interop scenario, in Warden's agent model.
#
# The Todo application's backend is the agent: it asks on behalf of the
# signed-in user (the AuthZEN subject, an opaque id that the identity
# snapshot maps to an email and roles). An action is allowed only when the
# backend itself is granted it and the user's roles permit it:
#   can_read_user, can_read_todos   every known user
#   can_create_todo                 admin or editor
#   can_update_todo                 evil_genius, or an editor who owns the todo
#   can_delete_todo                 admin, or an editor who owns the todo
# A todo's owner is `resource.properties.ownerID`, an email.
package authzen_todo

decision := {"allow": true, "reasons": []} if {
	count(deny_reasons) == 0
} else := {"allow": false, "reasons": sort(deny_reasons)}

user := data.identity.users[input.principal.id]

agent := data.identity.agents[input.agent.id]

roles := {role | some role in user.groups}

deny_reasons contains "user_unknown" if not user

deny_reasons contains "agent_unknown" if not agent

deny_reasons contains "platform_mismatch" if agent.platform != input.platform

deny_reasons contains "agent_not_granted" if {
	agent
	not input.action.name in agent.grants
}

deny_reasons contains "role_does_not_permit" if {
	user
	not permitted
}

owns if input.resource.attributes.ownerID == user.attributes.email

permitted if input.action.name in {"can_read_user", "can_read_todos"}

permitted if {
	input.action.name == "can_create_todo"
	some role in ["admin", "editor"]
	role in roles
}

permitted if {
	input.action.name == "can_update_todo"
	"evil_genius" in roles
}

permitted if {
	input.action.name == "can_delete_todo"
	"admin" in roles
}

permitted if {
	input.action.name in {"can_update_todo", "can_delete_todo"}
	"editor" in roles
	owns
}
