package p

allow if json.marshal(input) != ""
