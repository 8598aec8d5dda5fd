package p

import input.agent

allow if { some k; input.context[k] == 1 }
c := input.principal
allow if c.attributes.mfa
allow if count(input.action.attributes) > 1
n := count(object.get(input, "audience", []))
m := object.get(input.resource, "id", "")
o := object.get(input.context, ["a"], 1)
allow if input["con\ttext"].x
