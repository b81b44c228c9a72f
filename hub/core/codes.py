"""Standard codes of digital city management, parsed and checked (pure).

- Unit grid code (CJ/T 213, GB/T 30428.1): 6-digit county admin code + 3-digit street + 3-digit
  community + grid sequence (2 digits nationally, 3 in some local standards). First-level grids
  (streets) in the demo city are the 9-digit county + street prefix.
- Component id (CJ/T 214, GB/T 30428.2): 6-digit county code + 2-digit major class + 2-digit minor
  class + 6-digit serial = 16 digits, e.g. ``3205080101000001`` = 姑苏区 / 公用设施 / 上水井盖 / 000001.
"""

from __future__ import annotations

import dataclasses

from hub.core.errors import ValidationFailed


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentId:
    county: str
    major: str
    minor: str
    serial: str

    @classmethod
    def parse(cls, text: str) -> ComponentId:
        if len(text) != 16 or not text.isascii() or not text.isdigit():
            raise ValidationFailed(
                "部件编码须为 16 位数字（6 位区县码 + 2 位大类 + 2 位小类 + 6 位序号）",
                code="bad_component_id",
                details={"component_id": text[:32]},
            )
        return cls(text[:6], text[6:8], text[8:10], text[10:])

    def __str__(self) -> str:
        return f"{self.county}{self.major}{self.minor}{self.serial}"

    @property
    def class_code(self) -> str:
        """Major + minor class, the key into the component catalog."""
        return self.major + self.minor


@dataclasses.dataclass(frozen=True, slots=True)
class GridCode:
    county: str
    street: str
    community: str
    sequence: str

    @classmethod
    def parse(cls, text: str) -> GridCode:
        if not (text.isascii() and text.isdigit() and len(text) in (9, 14, 15)):
            raise ValidationFailed(
                "网格编码须为 9 位（街道）或 14–15 位（单元网格）数字",
                code="bad_grid_code",
                details={"grid_code": text[:32]},
            )
        return cls(text[:6], text[6:9], text[9:12], text[12:])

    @property
    def is_street(self) -> bool:
        return not self.community
