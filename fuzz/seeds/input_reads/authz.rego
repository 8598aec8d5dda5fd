# Warden's default policy: the agent model.
#
# An agent may take an action only when all of these hold:
#   - the agent is known (data.identity.agents) and belongs to the calling platform;
#   - one of the agent's own grants covers the action;
#   - the principal it acts for is entitled to the action on the resource,
#     directly or through a group (data.entitlements).
# So an agent never gets more than the person it acts for. Disclosing actions
# also need every member of their audience to be entitled (disclosure.rego),
# and every agent in the delegation chain to be granted (delegation.rego).
# Actions listed as sensitive in data.warden.config.sensitive_actions need a
# person's approval even then; who may approve is the first of
# data.warden.config.approval_rules whose actions match (the decision's
# `approval` member).
#
# This module must sort first among the package's files: regorus's
# interpreter, which runs the unit tests, misreads this else chain when
# another module of the package is loaded before it.
package warden.authz

# The decision Warden reads. Reasons are sorted so that every engine and OPA
# itself agree on the exact value. A denial for the audience also names who
# lacks access (disclosure.rego).
decision := {"allow": false, "require_approval": false, "reasons": sort(deny_reasons), "audience": audience_report} if {
	deny_reasons.audience_not_entitled
	audience_report
} else := {"allow": false, "require_approval": false, "reasons": sort(deny_reasons)} if {
	count(deny_reasons) > 0
} else := {"allow": true, "require_approval": true, "reasons": ["sensitive_action"], "approval": approval} if {
	sensitive
	approval
} else := {"allow": true, "require_approval": true, "reasons": ["sensitive_action"]} if {
	sensitive
} else := {"allow": true, "require_approval": false, "reasons": []}

# Who may approve: the first approval rule whose actions match.
approval := data.warden.config.approval_rules[min(approval_rule_matches)].approval

approval_rule_matches contains i if {
	patterns := action_patterns
	some i, rule in data.warden.config.approval_rules
	some pattern in rule.actions
	patterns[pattern]
}

agent := data.identity.agents[input.agent.id]

# An empty principal type means a user, as the API documents.
principal_type := object.get(input.principal, "type", "user")

deny_reasons contains "agent_unknown" if not agent

deny_reasons contains "platform_mismatch" if agent.platform != input.platform

deny_reasons contains "agent_not_granted" if {
	agent
	not agent_granted
}

deny_reasons contains "principal_unknown" if {
	principal_type == "user"
	not data.identity.users[input.principal.id]
}

deny_reasons contains "principal_not_entitled" if not principal_entitled

# `patterns := action_patterns` once per body, then set lookups on the local:
# naming the rule inside the loop costs a rule call per iteration in the RVM.
agent_granted if {
	patterns := action_patterns
	some pattern in agent.grants
	patterns[pattern]
}

# Entitlements are indexed by subject, resource type and resource id, so this
# is a handful of lookups, not a scan. One body per resource key ("*" for
# every resource of the type, or the resource's own id) rather than a set of
# the two keys: building and walking that set cost a fifth of an evaluation.
principal_entitled if {
	patterns := action_patterns
	some subject in subjects
	some pattern in data.entitlements.subjects[subject][input.resource.type]["*"]
	patterns[pattern]
}

principal_entitled if {
	patterns := action_patterns
	some subject in subjects
	some pattern in data.entitlements.subjects[subject][input.resource.type][input.resource.id]
	patterns[pattern]
}

subjects contains concat(":", [principal_type, input.principal.id])

subjects contains concat(":", ["group", group]) if {
	principal_type == "user"
	some group in data.identity.users[input.principal.id].groups
}

sensitive if {
	patterns := action_patterns
	some pattern in data.warden.config.sensitive_actions
	patterns[pattern]
}

# Every pattern that matches the requested action, so that matching a list of
# patterns is one set lookup each. Patterns are dotted names: `*` alone
# matches everything, a final `.*` any suffix (`documents.*` matches
# `documents.read.all`), a leading `*.` any prefix (`*.delete`); anything else
# must match exactly.
action_patterns contains input.action.name

action_patterns contains "*"

action_patterns contains concat(".", array.concat(array.slice(action_parts, 0, i), ["*"])) if {
	some i, _ in action_parts
	i > 0
}

action_patterns contains concat(".", array.concat(["*"], array.slice(action_parts, i, count(action_parts)))) if {
	some i, _ in action_parts
	i > 0
}

action_parts := split(input.action.name, ".")
