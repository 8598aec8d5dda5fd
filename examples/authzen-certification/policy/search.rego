# Candidate generators for the search APIs (/access/v1/search/*). Each rule
# gets the search's fixed part as `input` (the check's input without the
# field searched for) and proposes candidates; Warden decides each with
# data.authzen_certification.decision, exactly as an evaluation would, and
# returns those allowed. A generator only proposes: what it proposes
# wrongly is denied, what it leaves out is not found.
package warden.search

# Actions: those the agent is granted.
actions contains name if {
	some name in data.identity.agents[input.agent.id].grants
}

# Resources: the records the bundle describes, for type `record`.
resources contains id if {
	input.resource.type == "record"
	some id, _ in data.authzen_certification.records
}

# Subjects: the directory's users, for type `user`.
subjects contains id if {
	input.principal.type == "user"
	some id, _ in data.identity.users
}
