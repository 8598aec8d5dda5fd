# Candidate generators for Warden's search APIs (SearchActions,
# SearchResources, SearchSubjects and AuthZEN's /access/v1/search/*).
#
# Each rule gets the search's fixed part as `input` (a check's input without
# the field searched for) and proposes candidates. Warden then decides every
# candidate with data.warden.authz.decision, exactly as a check would, so a
# generator may propose too much (it costs evaluations) but never decides:
# what it leaves out is not found, what it proposes wrongly is denied.
# They read indexes, never scan every user: the entitlements are keyed by
# subject, and data.search_index (built by Warden from the snapshots) lists
# each resource's grantees and each group's members.
package warden.search

import data.warden.authz

# Actions: the catalogue's for the resource type, and every action that the
# agent's grants or the principal's entitlements on the resource spell out.
# Actions reachable only through a pattern (`tickets.*`) and missing from
# the catalogue are not proposed: name them as candidates instead.
actions contains name if {
	some name in data.warden.config.actions[input.resource.type]
}

actions contains name if {
	some name in data.identity.agents[input.agent.id].grants
	not contains(name, "*")
}

actions contains name if {
	some subject in authz.subjects
	some key in resource_keys
	some name in data.entitlements.subjects[subject][input.resource.type][key]
	not contains(name, "*")
}

# Resources: those the principal's entitlements name for the type with a
# pattern covering the action. `*` stands for every resource of the type.
resources contains key if {
	patterns := authz.action_patterns
	some subject in authz.subjects
	some key, granted in data.entitlements.subjects[subject][input.resource.type]
	some pattern in granted
	patterns[pattern]
}

# Subjects: the resource's grantees (by id, or on every resource of its
# type) whose grant covers the action, groups expanded to their members.
subjects contains grant.id if {
	some grant in grants
	grant.kind == principal_type
}

subjects contains id if {
	principal_type == "user"
	some grant in grants
	grant.kind == "group"
	some id in data.search_index.members[grant.id]
}

grants contains grant if {
	patterns := authz.action_patterns
	some key in resource_keys
	some grant in data.search_index.grantees[input.resource.type][key]
	some pattern in grant.actions
	patterns[pattern]
}

resource_keys contains "*"

resource_keys contains input.resource.id

principal_type := object.get(input.principal, "type", "user")
