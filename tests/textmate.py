"""A small TextMate grammar engine, enough to test editors/vscode's grammar on the specs.

It follows what VS Code's engine (vscode-textmate) does for the rules the grammar uses: `match`
with `name` and `captures`, `begin`/`end` with `beginCaptures`/`endCaptures` and inner
`patterns`, `include` of `#repository` entries; at each position the earliest match wins, ties
going to an open rule's `end`, then to the first pattern listed. Python's `re` stands in for
Oniguruma: the grammar keeps to the syntax both read the same.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any


class Grammar:
    def __init__(self, path: Path):
        data = json.loads(path.read_text(encoding="utf-8"))
        self.scope = data["scopeName"]
        self.repository = data["repository"]
        self.top = self.expand(data["patterns"])

    def expand(self, patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for pattern in patterns:
            if "include" in pattern:
                entry = self.repository[pattern["include"].removeprefix("#")]
                rules.extend(
                    self.expand([entry])
                    if "match" in entry or "begin" in entry
                    else self.expand(entry["patterns"])
                )
            else:
                rules.append(pattern)
        return rules

    @staticmethod
    @functools.cache
    def regex(source: str) -> re.Pattern[str]:
        return re.compile(source)

    def tokenize(self, text: str) -> list[list[list[str]]]:
        """Each line's characters, each with its scopes (outermost first)."""
        stack: list[tuple[dict[str, Any], list[str]]] = []
        result = []
        for line in text.split("\n"):
            scopes: list[list[str]] = [[] for _ in line]
            position = 0
            while position <= len(line):
                base = [self.scope] + [s for _, names in stack for s in names]
                rules = self.expand(stack[-1][0].get("patterns", [])) if stack else self.top
                best: tuple[int, int, Any, Any] | None = None  # (start, priority, rule, match)
                if stack:
                    end = self.regex(stack[-1][0]["end"]).search(line, position)
                    if end is not None:
                        best = (end.start(), -1, None, end)
                for priority, rule in enumerate(rules):
                    match = self.regex(rule.get("match") or rule["begin"]).search(line, position)
                    if match is not None and (best is None or match.start() < best[0]):
                        best = (match.start(), priority, rule, match)
                if best is None:
                    self._fill(scopes, position, len(line), base)
                    break
                start, _, rule, match = best
                self._fill(scopes, position, start, base)
                if rule is None:  # the open rule ends
                    closing, names = stack.pop()
                    self._fill(scopes, match.start(), match.end(), base)
                    self._captures(scopes, match, closing.get("endCaptures", {}), base)
                elif "match" in rule:
                    names = base + ([rule["name"]] if "name" in rule else [])
                    self._fill(scopes, match.start(), match.end(), names)
                    self._captures(scopes, match, rule.get("captures", {}), names)
                else:
                    names = base + ([rule["name"]] if "name" in rule else [])
                    self._fill(scopes, match.start(), match.end(), names)
                    self._captures(scopes, match, rule.get("beginCaptures", {}), names)
                    stack.append((rule, [rule["name"]] if "name" in rule else []))
                if match.end() == position and rule is not None:  # an empty match: step past it
                    self._fill(scopes, position, position + 1, base)
                    position += 1
                else:
                    position = match.end()
            result.append(scopes)
        return result

    @staticmethod
    def _fill(scopes: list[list[str]], start: int, end: int, names: list[str]) -> None:
        for index in range(start, min(end, len(scopes))):
            scopes[index] = list(names)

    @staticmethod
    def _captures(
        scopes: list[list[str]], match: re.Match[str], captures: dict[str, Any], names: list[str]
    ) -> None:
        for group, capture in captures.items():
            number = int(group)
            if match.group(number) is None:
                continue
            for index in range(match.start(number), min(match.end(number), len(scopes))):
                scopes[index] = [*names, capture["name"]]
