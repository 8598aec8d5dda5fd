package p

redacted_safe if count(input.context) == 0
