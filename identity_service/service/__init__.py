"""Use cases of the identity service: each opens a unit of work, asks the domain, writes, audits."""
