# Delegation: every agent the action passed through (`agent:ID` entries of
# input.delegation, the parsed delegation_chain) must be a known agent of the
# calling platform whose own grants cover the action, so that no agent can
# launder an action through another one that is allowed more. Other entries
# (`client:…`, `user:…`) are recorded, not judged.
package warden.authz

deny_reasons contains reason if {
	some link in input.delegation
	link.kind == "agent"
	reason := delegate_refusal(link.id)
}

delegate_refusal(id) := concat(":", ["delegate_unknown", id]) if {
	not delegate_known(id)
} else := concat(":", ["delegate_not_granted", id]) if {
	not delegate_granted(id)
}

delegate_known(id) if data.identity.agents[id].platform == input.platform

delegate_granted(id) if {
	patterns := action_patterns
	some pattern in data.identity.agents[id].grants
	patterns[pattern]
}
