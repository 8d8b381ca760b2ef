"""Change events (api.md "Events"): the outbox rows both services write, and the relay that
publishes them to the events exchange."""
