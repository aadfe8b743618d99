"""What the interfaces service's RPCs take (input schemas, ``load``) and answer (output schemas, ``dump``);
the gateway's OpenAPI document is built from them."""

from __future__ import annotations
