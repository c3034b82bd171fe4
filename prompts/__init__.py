"""The prompt library: versioned prompts per organization, used by reference in a request."""
