package p

# input.context.secret in a comment is not a read
allow if input.context.ip == "10.0.0.1"
allow if input["action"]["attributes"].amount > 3
allow if input[`resource`].id == "r"
s := "input.context.prompt"
x := data.input.context.other
test_it if allow with input as {"context": {"prompt": 1}}
