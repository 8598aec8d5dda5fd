package authzen_todo.tests

import data.authzen_todo

identity := {
	"users": {
		"morty-id": {"groups": ["editor"], "attributes": {"email": "morty@the-citadel.com"}},
		"beth-id": {"groups": ["viewer"], "attributes": {"email": "beth@the-smiths.com"}},
	},
	"agents": {"todo-backend": {"platform": "todo", "grants": ["can_update_todo"]}},
}

check(user, owner) := decision if {
	decision := authzen_todo.decision with input as {
		"platform": "todo",
		"agent": {"id": "todo-backend"},
		"principal": {"type": "user", "id": user},
		"action": {"name": "can_update_todo"},
		"resource": {"type": "todo", "id": "1", "attributes": {"ownerID": owner}},
	}
		with data.identity as identity
}

test_an_editor_updates_their_own_todo if {
	check("morty-id", "morty@the-citadel.com").allow
}

test_an_editor_may_not_update_another_users_todo if {
	check("morty-id", "rick@the-citadel.com") == {"allow": false, "reasons": ["role_does_not_permit"]}
}

test_a_viewer_may_not_update_even_their_own if {
	not check("beth-id", "beth@the-smiths.com").allow
}

test_an_unknown_subject_is_denied if {
	check("nobody", "morty@the-citadel.com").reasons == ["user_unknown"]
}
