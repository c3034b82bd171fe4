"""Regex helpers shared by the protection and rule modules."""

from __future__ import annotations

import re


def phrase_alternation(phrases) -> str:
    """A regex matching any of `phrases`, built as a character trie.

    Python's `re` tries the branches of a plain alternation one by one at every position; a
    trie shares prefixes, so a list of a hundred phrases costs about as much as one. Spaces in
    a phrase match any run of spaces or tabs. Match case-insensitively by compiling with
    `re.IGNORECASE` and passing lower-case phrases.
    """
    trie: dict = {}
    for phrase in phrases:
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie_regex(trie)


def _trie_regex(node: dict) -> str:
    branches = []
    optional = False
    for char, child in sorted(node.items()):
        if char == "":
            optional = True
            continue
        atom = r"[ \t]+" if char == " " else re.escape(char)
        branches.append(atom + _trie_regex(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if optional:
        # Longest match first is the greedy default of `?`.
        return f"(?:{body})?"
    return body


def word_phrases_regex(phrases, *, suffix: str = r"(?![\w'’-])") -> str:
    """A case-insensitive regex for whole-word `phrases` that `re` can scan quickly.

    `re` only skips ahead fast when a pattern starts with a literal or a character class, and
    `\\b`, lookbehinds, IGNORECASE alternations all defeat that (a 5-50x difference on
    prose). So the pattern starts with the class of first letters, checks the word boundary
    with a lookbehind once that letter matched, and dispatches on the letter it saw.
    """
    by_first: dict[str, list[str]] = {}
    for phrase in phrases:
        phrase = phrase.lower()
        by_first.setdefault(phrase[0], []).append(phrase[1:])
    letters = "".join(sorted(by_first))
    first_class = re.escape(letters + letters.upper())
    branches = []
    for letter, rests in sorted(by_first.items()):
        both = re.escape(letter + letter.upper())
        branches.append(f"(?<=[{both}]){phrase_alternation(rests)}")
    return (
        rf"[{first_class}](?<![\w'’-][{first_class}])"
        rf"(?i:(?:{'|'.join(branches)})){suffix}"
    )
