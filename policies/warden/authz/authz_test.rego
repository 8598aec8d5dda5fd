package warden.authz_test

import data.warden.authz

identity := {
	"users": {
		"alice": {"groups": ["finance"], "attributes": {}},
		"bob": {"groups": [], "attributes": {}},
		"carol": {"groups": ["finance", "all-staff"], "attributes": {}},
		"dan": {"groups": ["all-staff"], "attributes": {}},
	},
	"agents": {"reporter": {
		"owner": "alice",
		"platform": "copilot",
		"grants": ["documents.*", "permissions.grant", "reports.share"],
		"attributes": {},
	},
	"reader": {"owner": "alice", "platform": "copilot", "grants": ["documents.read"], "attributes": {}},
	"elsewhere": {"owner": "alice", "platform": "other", "grants": ["*"], "attributes": {}},
	},
	"groups": {"finance": {"attributes": {}}, "all-staff": {"attributes": {}}},
}

entitlements := {"subjects": {
	"group:finance": {"document": {"*": ["documents.read"]}, "report": {"q3": ["reports.*"]}},
	"user:alice": {"document": {"budget": ["documents.*"]}, "role": {"*": ["permissions.grant"]}},
}}

check(request) := decision if {
	decision := authz.decision with data.identity as identity
		with data.entitlements as entitlements
		with input as request
}

request(overrides) := object.union(
	{
		"platform": "copilot",
		"agent": {"id": "reporter"},
		"principal": {"type": "user", "id": "alice"},
		"action": {"name": "documents.read"},
		"resource": {"type": "document", "id": "memo"},
	},
	overrides,
)

test_allow_through_group if {
	check(request({})) == {"allow": true, "require_approval": false, "reasons": []}
}

test_allow_direct_user_entitlement_with_suffix_pattern if {
	check(request({"action": {"name": "documents.write"}, "resource": {"type": "document", "id": "budget"}})).allow
}

test_principal_type_defaults_to_user if {
	check(request({"principal": {"id": "alice"}})).allow
}

test_resource_without_id_needs_wildcard_entitlement if {
	check(request({"resource": {"type": "document"}})).allow
	not check(request({"resource": {"type": "report"}, "action": {"name": "reports.share"}})).allow
}

test_unknown_agent if {
	check(request({"agent": {"id": "ghost"}})).reasons == ["agent_unknown"]
}

test_platform_mismatch if {
	check(request({"platform": "other"})) == {"allow": false, "require_approval": false, "reasons": ["platform_mismatch"]}
}

test_agent_not_granted_even_when_principal_is_entitled if {
	check(request({"action": {"name": "reports.read"}, "resource": {"type": "report", "id": "q3"}})).reasons == ["agent_not_granted"]
}

test_agent_never_exceeds_principal if {
	check(request({"principal": {"type": "user", "id": "bob"}})).reasons == ["principal_not_entitled"]
}

test_unknown_principal if {
	check(request({"principal": {"type": "user", "id": "mallory"}})).reasons == ["principal_not_entitled", "principal_unknown"]
}

test_service_principal_needs_own_entitlement if {
	check(request({"principal": {"type": "service", "id": "alice"}})).reasons == ["principal_not_entitled"]
}

test_sensitive_action_requires_approval if {
	check(request({"action": {"name": "permissions.grant"}, "resource": {"type": "role", "id": "admin"}})) == {
		"allow": true,
		"require_approval": true,
		"reasons": ["sensitive_action"],
		"approval": {"approvers": ["group:security"], "self": false, "max_ttl": "1h", "uses": 1, "template": "acl_change"},
	}
}

test_sensitive_suffix_pattern if {
	d := check(request({"action": {"name": "reports.share"}, "resource": {"type": "report", "id": "q3"}, "audience": ["user:alice"]}))
	d.require_approval
	d.approval == {"approvers": [], "self": true, "max_ttl": "1h", "uses": 1, "template": "principal_confirmation"}
}

test_delete_is_confirmed_by_the_principal if {
	d := check(request({"action": {"name": "documents.delete"}, "resource": {"type": "document", "id": "budget"}}))
	d.require_approval
	d.approval.self
	d.approval.template == "principal_confirmation"
}

# The first matching rule decides who approves.
test_first_approval_rule_wins if {
	rules := [
		{"actions": ["permissions.*"], "approval": {"approvers": ["user:ciso"]}},
		{"actions": ["*"], "approval": {"self": true}},
	]
	d := authz.decision with data.identity as identity
		with data.entitlements as entitlements
		with data.warden.config.approval_rules as rules
		with input as request({"action": {"name": "permissions.grant"}, "resource": {"type": "role", "id": "admin"}})
	d.approval == {"approvers": ["user:ciso"]}
}

# A sensitive action no rule covers still needs approval; nobody can give it
# through Warden (no `approval` member).
test_sensitive_without_rule_has_no_approvers if {
	d := authz.decision with data.identity as identity
		with data.entitlements as entitlements
		with data.warden.config.approval_rules as []
		with input as request({"action": {"name": "permissions.grant"}, "resource": {"type": "role", "id": "admin"}})
	d == {"allow": true, "require_approval": true, "reasons": ["sensitive_action"]}
}

test_ordinary_action_has_no_approval if {
	not check(request({})).approval
}

test_denial_beats_approval if {
	d := check(request({"action": {"name": "permissions.grant"}, "resource": {"type": "role", "id": "admin"}, "platform": "other"}))
	not d.allow
	not d.require_approval
}

test_reasons_accumulate_sorted if {
	check(request({"platform": "other", "principal": {"type": "user", "id": "bob"}})).reasons == ["platform_mismatch", "principal_not_entitled"]
}

matches(pattern, action) if {
	pattern in authz.action_patterns with input as {"action": {"name": action}}
}

test_action_patterns if {
	matches("*", "a.b")
	matches("a.*", "a.b.c")
	matches("a.b.*", "a.b.c")
	not matches("a.*", "a")
	not matches("a.*", "ab.c")
	matches("*.delete", "files.delete")
	matches("*.c", "a.b.c")
	matches("*.b.c", "a.b.c")
	not matches("*.delete", "files.undelete")
	not matches("*.delete", "delete")
	not matches("a.b", "a.bc")
	matches("a", "a")
}

share(overrides) := check(request(object.union(
	{"action": {"name": "documents.share"}, "resource": {"type": "document", "id": "budget"}},
	overrides,
)))

test_disclosure_needs_an_audience if {
	share({}).reasons == ["audience_missing"]
}

test_disclosure_to_entitled_people_goes_ahead if {
	share({"audience": ["user:alice"]}).require_approval
	share({"audience": ["group:finance", "user:carol"]}).require_approval
}

test_disclosure_to_someone_without_access if {
	d := share({"audience": ["user:bob", "group:finance"]})
	d.reasons == ["audience_not_entitled"]
	d.audience == {"members": 3, "lacking_count": 1, "lacking": ["user:bob"]}
}

test_disclosure_to_a_group_names_who_lacks_access if {
	d := share({"audience": ["group:all-staff"]})
	not d.allow
	d.audience == {"members": 2, "lacking_count": 1, "lacking": ["user:dan"]}
}

test_disclosure_counts_the_resource_grants_too if {
	# budget is readable by finance (every document) and alice (her own).
	d := share({"audience": ["user:alice", "user:bob", "user:dan"]})
	d.audience == {"members": 3, "lacking_count": 2, "lacking": ["user:bob", "user:dan"]}
}

test_unknown_audience if {
	share({"audience": ["user:ghost"]}).reasons == ["audience_unknown"]
	share({"audience": ["group:nobody"]}).reasons == ["audience_unknown"]
}

test_external_audience if {
	share({"audience": ["public"]}).reasons == ["audience_external"]
	share({"audience": ["external:partner.example"]}).reasons == ["audience_external"]
	public := {"type": "document", "id": "budget", "attributes": {"classification": "public"}}
	share({"audience": ["public", "user:alice"], "resource": public}).require_approval
}

test_non_disclosing_actions_ignore_the_audience if {
	check(request({"audience": ["user:bob"]})).allow
}

test_disclosure_needs_the_principal_too if {
	d := share({"audience": ["user:alice"], "principal": {"type": "user", "id": "bob"}})
	d.reasons == ["principal_not_entitled"]
}

delegated(links) := check(request({"delegation": links}))

test_delegate_must_be_known_on_the_platform if {
	delegated([{"kind": "agent", "id": "ghost"}]).reasons == ["delegate_unknown:ghost"]
	delegated([{"kind": "agent", "id": "elsewhere"}]).reasons == ["delegate_unknown:elsewhere"]
}

test_delegate_must_be_granted if {
	delegated([{"kind": "agent", "id": "reader"}]).allow
	d := check(request({"action": {"name": "documents.write"}, "resource": {"type": "document", "id": "budget"}, "delegation": [{"kind": "agent", "id": "reader"}]}))
	d.reasons == ["delegate_not_granted:reader"]
}

test_other_delegates_are_recorded_only if {
	delegated([{"kind": "client", "id": "chat-ui"}, {"kind": "user", "id": "ghost"}]).allow
}
