"""Users, API tokens, namespaces (a user's own, or an organisation's) and memberships."""
