"""The gettext marker, in a module with no project imports, so the bottom layers can mark
their texts for extraction without importing the conversation layer that translates them."""


def N_(message: str) -> str:
    """Mark a string for extraction where it is declared; it is translated when rendered."""
    return message
