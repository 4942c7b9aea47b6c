"""The fields iiko's documentation promises in the v2 JSON lists, with the version that added each one.

A check compares every answer with these (`core.checks`: `fields_as_documented`): a documented field that is
missing, or a field nobody documented, is worth a warning (iiko renamed or dropped something), never a failed
sync. Sources: iiko's API docs, `elementy-nomenklatury`, `nomenklaturnye-gruppy`, `spravochniki` (see
docs/iiko-more-entities.md in the shared docs).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DocumentedFields:
    """The documented fields of one list. `since` maps a field to the iiko version that added it (older servers
    leave the key out); `either` holds groups of spellings of which one is enough (the docs disagree)."""

    fields: frozenset[str]
    since: dict[str, tuple[int, ...]] = field(default_factory=dict)
    either: tuple[frozenset[str], ...] = ()

    def expected(self, version: tuple[int, ...] | None) -> frozenset[str]:
        """Fields every item should carry on a server of this version (unknown version: the unversioned ones)."""
        return frozenset(f for f in self.fields
                         if f not in self.since or (version is not None and version >= self.since[f]))

    def known(self) -> frozenset[str]:
        return self.fields | frozenset(f for group in self.either for f in group)


_SHARED = frozenset({"id", "deleted", "name", "description", "num", "code", "parent", "modifiers", "taxCategory",
                     "category", "accountingCategory", "color", "fontColor", "frontFontSize", "frontImageId",
                     "position", "modifierSchemaId"})

PRODUCTS = DocumentedFields(
    fields=_SHARED | {"mainUnit", "type", "unitWeight", "unitCapacity", "notInStoreMovement", "defaultSalePrice",
                      "containers", "barcodes"},
    since={"containers": (6, 2, 4), "barcodes": (8, 7, 1)},
    # The docs' example JSON says defaultIncludedInMenu, their field table defaultIncludeInMenu.
    either=(frozenset({"defaultIncludedInMenu", "defaultIncludeInMenu"}),),
)

PRODUCT_GROUPS = DocumentedFields(fields=_SHARED | {"visibilityFilter"})

ENTITIES = DocumentedFields(fields=frozenset({"id", "rootType", "deleted", "code", "name"}))


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """"8.7.1.6015" -> (8, 7, 1, 6015); None when absent or not numeric."""
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return None
