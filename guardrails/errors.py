from common.errors import DomainError


class PiiDetected(DomainError):
    code = "pii_detected"
    message = "The request contains personal data or secrets."


class ContentBlocked(DomainError):
    code = "content_blocked"
    message = "The content was refused by the organization's guardrail rules."
