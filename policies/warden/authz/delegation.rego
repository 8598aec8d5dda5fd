# Delegation: every agent the action passed through (`agent:ID` entries of
# input.delegation, the parsed delegation_chain) must be a known agent of the
# calling platform whose own grants cover the action, so that no agent can
# launder an action through another one that is allowed more. Other entries
# (`client:…`, `user:…`) are recorded, not judged.
package warden.authz

delegate_ids contains link.id if {
	some link in input.delegation
	link.kind == "agent"
}

# One entry into deny_reasons, taken only by checks that carry a chain.
deny_reasons contains reason if {
	input.delegation
	some reason in delegation_reasons
}

delegation_reasons contains concat(":", ["delegate_unknown", id]) if {
	some id in delegate_ids
	not delegate_known(id)
}

delegation_reasons contains concat(":", ["delegate_not_granted", id]) if {
	some id in delegate_ids
	delegate_known(id)
	not delegate_granted(id)
}

delegate_known(id) if data.identity.agents[id].platform == input.platform

delegate_granted(id) if {
	patterns := action_patterns
	some pattern in data.identity.agents[id].grants
	patterns[pattern]
}
