package authzen_certification.tests

import data.authzen_certification
import data.warden.search

identity := {
	"users": {
		"alice": {"groups": []},
		"bob": {"groups": ["admin"]},
	},
	"agents": {"cert-harness": {
		"owner": "alice",
		"platform": "certification",
		"grants": ["read", "write", "delete"],
	}},
}

input_for(subject, action, resource) := {
	"platform": "certification",
	"agent": {"id": "cert-harness"},
	"principal": object.union({"type": "user", "attributes": {}}, subject),
	"action": object.union({"attributes": {}}, action),
	"resource": object.union({"type": "record", "attributes": {}}, resource),
	"context": {},
}

check(subject, action, resource) := decision if {
	decision := authzen_certification.decision with input as input_for(subject, action, resource)
		with data.identity as identity
}

allowed(subject, action, resource) if check(subject, action, resource).allow

# Decision rules 1-4: identifier fields only.

test_rule_1_alice_reads_record_1 if {
	allowed({"id": "alice"}, {"name": "read"}, {"id": "record-1"})
}

test_rule_2_alice_writes_record_1 if {
	allowed({"id": "alice"}, {"name": "write"}, {"id": "record-1"})
}

test_rule_3_bob_reads_record_1 if {
	allowed({"id": "bob"}, {"name": "read"}, {"id": "record-1"})
}

test_rule_4_bob_may_not_write_record_1 if {
	check({"id": "bob"}, {"name": "write"}, {"id": "record-1"}) == {"allow": false, "reasons": ["not_the_owner"]}
}

# Decision rules 5-8: properties.

test_rule_5_alice_may_not_write_an_archived_record if {
	decision := check({"id": "alice"}, {"name": "write"}, {"id": "record-2", "attributes": {"status": "archived"}})
	decision == {"allow": false, "reasons": ["archived_needs_admin"]}
}

test_rule_5_the_status_property_decides_not_the_id if {
	# record-1 is active in the bundle's data; the request says archived.
	not allowed({"id": "alice"}, {"name": "write"}, {"id": "record-1", "attributes": {"status": "archived"}})
}

test_rule_6_an_admin_writes_an_archived_record if {
	allowed({"id": "bob", "attributes": {"role": "admin"}}, {"name": "write"}, {"id": "record-2", "attributes": {"status": "archived"}})
}

test_rule_6_the_role_property_decides if {
	# alice is no admin in the directory; the request says she is.
	allowed({"id": "alice", "attributes": {"role": "admin"}}, {"name": "write"}, {"id": "record-2", "attributes": {"status": "archived"}})
	not allowed({"id": "bob", "attributes": {"role": "viewer"}}, {"name": "write"}, {"id": "record-2", "attributes": {"status": "archived"}})
}

test_rule_7_alice_soft_deletes_record_1 if {
	allowed({"id": "alice"}, {"name": "delete", "attributes": {"soft": true}}, {"id": "record-1"})
}

test_rule_8_alice_may_not_hard_delete_record_1 if {
	decision := check({"id": "alice"}, {"name": "delete", "attributes": {"soft": false}}, {"id": "record-1"})
	decision == {"allow": false, "reasons": ["hard_delete_not_permitted"]}
	not allowed({"id": "alice"}, {"name": "delete"}, {"id": "record-1"})
}

# Beyond the fixture's rules.

test_the_directory_role_applies_without_properties if {
	allowed({"id": "bob"}, {"name": "write"}, {"id": "record-2"})
}

test_unknown_subjects_resources_and_actions_are_denied if {
	check({"id": "nonexistent-user"}, {"name": "read"}, {"id": "record-1"}).reasons == ["user_unknown"]
	check({"type": "spaceship", "id": "alice"}, {"name": "read"}, {"id": "record-1"}).reasons == ["subject_type_unknown"]
	check({"id": "alice"}, {"name": "read"}, {"id": "record-9"}).reasons == ["record_unknown"]
	"resource_type_unknown" in check({"id": "alice"}, {"name": "read"}, {"type": "spaceship", "id": "record-1"}).reasons
	"agent_not_granted" in check({"id": "alice"}, {"name": "share"}, {"id": "record-1"}).reasons
}

test_another_platform_or_agent_is_denied if {
	other := object.union(input_for({"id": "alice"}, {"name": "read"}, {"id": "record-1"}), {"platform": "elsewhere"})
	decision := authzen_certification.decision with input as other with data.identity as identity
	decision.reasons == ["platform_mismatch"]
	stranger := object.union(other, {"platform": "certification", "agent": {"id": "stranger"}})
	not authzen_certification.decision.allow with input as stranger with data.identity as identity
}

# The search generators propose the fixture's entities, and nothing for
# types they do not know.

test_generators_propose_the_fixture if {
	search.subjects == {"alice", "bob"} with input as {"principal": {"type": "user"}}
		with data.identity as identity
	search.resources == {"record-1", "record-2"} with input as {"resource": {"type": "record"}}
	search.actions == {"read", "write", "delete"} with input as {"agent": {"id": "cert-harness"}}
		with data.identity as identity
}

test_generators_propose_nothing_for_unknown_types if {
	count(search.subjects) == 0 with input as {"principal": {"type": "spaceship"}}
		with data.identity as identity
	count(search.resources) == 0 with input as {"resource": {"type": "spaceship"}}
}
