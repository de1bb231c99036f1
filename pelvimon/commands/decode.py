"""``pelvimon decode``: the bytes of one notification -> the values it holds, for a named protocol."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any

from pelvimon.errors import PelvimonError, UsageError

NAME = "decode"
ORDER = 90
HELP = "decode the bytes of one BLE notification for a named sensor protocol"
DESCRIPTION = (
    "Decode ONE notification (hex bytes) with the decoder of a sensor protocol and print the samples it holds "
    "in SI units (acc m/s², gyro rad/s, mag µT, quaternion w,x,y,z, time s) and in the vendor's own units. "
    "For payloads split across notifications, repeat --hex for each part in order. Context that is not in the "
    "bytes (a scale factor, the payload mode, a previous timestamp) is given with --set KEY=VALUE; see "
    "docs/protocols/<protocol>.md (pelvimon_reference_protocol.md for pelvimon). Protocols timed by the host are shown on a host clock starting at 0 s."
)

_HEX_JUNK = re.compile(r"[\s:,_-]|0x", re.IGNORECASE)
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$", re.IGNORECASE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        required=True,
        metavar="NAME",
        help="movesense, polar_pmd, metawear, witmotion, movella_dot or pelvimon",
    )
    parser.add_argument(
        "--hex",
        required=True,
        action="append",
        metavar="HEX",
        help="notification bytes as hex (spaces and colons allowed); repeat for the parts of one payload",
    )
    parser.add_argument(
        "--char",
        metavar="UUID",
        help="characteristic the notification came from (default: the protocol's data characteristic)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="decoder context that is not in the bytes, e.g. --set factor=0.01 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def parse_hex(text: str) -> bytes:
    """Hex text (spaces, colons, dashes, commas and ``0x`` prefixes allowed) -> bytes; ``UsageError`` if not hex."""
    cleaned = _HEX_JUNK.sub("", text)
    if not cleaned:
        raise UsageError(f"--hex {text!r} holds no bytes")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        bad = next((c for c in cleaned if c not in "0123456789abcdefABCDEF"), None)
        why = f"{bad!r} is not a hex digit" if bad else f"odd number of hex digits ({len(cleaned)})"
        raise UsageError(f"--hex {text!r} is not hex bytes: {why}") from None


def parse_value(text: str) -> Any:
    """``"12"`` -> 12, ``"0.5"`` -> 0.5, ``"true"``/``"false"`` -> bool, anything else stays a string."""
    t = text.strip()
    if _INT.match(t):
        return int(t)
    if re.match(r"^0x[0-9a-f]+$", t, re.IGNORECASE):
        return int(t, 16)
    if _FLOAT.match(t):
        return float(t)
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    return t


def parse_context(items: list[str], known: tuple[str, ...], protocol: str) -> dict[str, Any]:
    """``["k=v", ...]`` -> context dict, refusing keys the protocol does not take."""
    context: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r} must look like KEY=VALUE")
        if key not in known:
            names = ", ".join(known) if known else "none"
            raise UsageError(f"unknown --set key {key!r} for protocol {protocol}; it takes: {names}")
        if key in context:
            raise UsageError(f"--set {key} is given twice; give it once")
        parsed = parse_value(value)
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise UsageError(f"--set {key}={value.strip()}: give a finite number")
        context[key] = parsed  # (its range is the decoder's to check: a ValueError, exit 2)
    return context


def _rows(a: Any) -> list:
    import numpy as np

    return np.asarray(a).tolist()


def _channels(batch: Any) -> tuple[str, ...]:
    return tuple(k for k in ("acc_mps2", "gyr_rads", "mag_uT", "quat_wxyz") if getattr(batch, k) is not None)


def batches_to_json(batches: list) -> dict[str, Any]:
    """The JSON object printed by ``--json``: ``t_s`` and the channels present, as lists of rows, + ``native``,
    and ``gaps`` (``before_sample``, ``n_lost``) where the decoder found samples lost."""
    if not batches:
        return {}
    same = all(_channels(b) == _channels(batches[0]) for b in batches)
    groups = [batches] if same else [[b] for b in batches]

    def one(group: list) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {"t_s": _rows(np.concatenate([b.t_s for b in group]))}
        for key in _channels(group[0]):
            out[key] = _rows(np.concatenate([getattr(b, key) for b in group]))
        # the losses the table shows: before which sample (of this object's rows), and how many samples
        starts = np.cumsum([0] + [len(b) for b in group[:-1]]).tolist()
        gaps = [{"before_sample": k, "n_lost": int(b.n_lost)} for k, b in zip(starts, group, strict=True) if b.gap_before]
        if gaps:
            out["gaps"] = gaps
        natives = [{k: _rows(v) for k, v in (b.native or {}).items()} for b in group]
        if any(natives):
            out["native"] = natives[0] if len(natives) == 1 else natives
        return out

    obj = one(groups[0])
    if len(groups) > 1:
        obj["batches"] = [one(g) for g in groups]
    return obj


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _fmt_time(t: float) -> str:
    """A sample time to the microsecond: device clocks count from far off zero (a Polar frame at 7.7e8 s)."""
    return f"{t:.6f}"


def print_table(protocol: str, char: str, batches: list, out: Any = None) -> None:
    """A readable table of the decoded samples and the native values (to ``out``, default stdout)."""
    import numpy as np

    out = sys.stdout if out is None else out

    if not batches:
        print(
            f"{protocol} on {char}: no samples (a control message or a reply, not a data notification)",
            file=out,
        )
        return
    for i, b in enumerate(batches):
        flags = f"time base {b.time_base}"
        if b.gap_before:
            flags += f", gap before ({b.n_lost} samples lost)"
        title = f"{protocol} on {char}: {len(b)} sample{'s' if len(b) != 1 else ''}, {flags}"
        print(title if len(batches) == 1 else f"[{i + 1}/{len(batches)}] {title}", file=out)
        cols: list[tuple[str, np.ndarray]] = [("t_s", b.t_s[:, None])]
        heads = {"acc_mps2": "acc m/s² x y z", "gyr_rads": "gyr rad/s x y z", "mag_uT": "mag µT x y z",
                 "quat_wxyz": "quat w x y z"}  # fmt: skip
        for key in _channels(b):
            cols.append((heads[key], getattr(b, key)))
        cells = [[_fmt_time(b.t_s[r]), *(" ".join(_fmt(v) for v in arr[r]) for _, arr in cols[1:])]
                 for r in range(len(b))]  # fmt: skip
        widths = [max(len(h), *(len(row[c]) for row in cells)) for c, (h, _) in enumerate(cols)]
        print("  ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)), file=out)
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)), file=out)
        for key, value in (b.native or {}).items():
            arr = np.asarray(value)
            text = " ".join(_fmt(v) if isinstance(v, float) else str(v) for v in arr.reshape(-1).tolist())
            shape = "" if arr.ndim <= 1 and arr.size <= 1 else f" {tuple(arr.shape)}"
            print(f"native {key}{shape}: {text}", file=out)


def assumed_context(protocol: str, given: dict[str, Any]) -> dict[str, Any]:
    """The decoder context the protocol's decoder assumes for the keys not ``given``: what the bytes are read
    with although they do not say it (a range, a rate, a scale factor), so that a table read with the wrong
    one can be told from a wrong decoder."""
    import inspect

    proto = _protocol(protocol)
    dec = proto.decoder(**given)
    params = inspect.signature(type(dec).__init__).parameters
    out = {
        k: params[k].default
        for k in proto.spec.context_keys
        if k not in given and k in params and params[k].default not in (None, inspect.Parameter.empty)
    }
    out.update({k: v for k, v in dec.assumed_context().items() if k not in given})
    return out


def _protocol(name: str) -> Any:
    from pelvimon.firmware_protocols import registry

    try:
        return registry.get(name)
    except KeyError:
        raise UsageError(f"unknown protocol {name!r}; available: {', '.join(registry.available())}") from None
    except ModuleNotFoundError:
        raise PelvimonError(f"protocol {name!r} is not available in this installation") from None


def decode(
    protocol: str, parts: list[bytes], char: str | None = None, context: dict[str, Any] | None = None
) -> tuple[str, list]:
    """Decode the parts of one notification; returns the characteristic used and the batches.

    Raises
    ------
    UsageError
        Unknown protocol or context the decoder refuses.
    PelvimonError
        The bytes are not a frame the protocol accepts (the message is the decoder's), or they end inside a
        payload (the decoder holds bytes for a part that was not given).
    """
    import numpy as np

    from pelvimon.firmware_protocols.base import ProtocolError

    proto = _protocol(protocol)
    spec = proto.spec
    use_char = (char or spec.notify_uuids[0]).strip().lower()
    given = ", ".join(f"{k}={v}" for k, v in (context or {}).items())

    def bad_set(exc: Exception) -> UsageError:
        why = "a number is expected" if str(exc).startswith("could not convert") else str(exc) or type(exc).__name__
        return UsageError(f"bad --set for {protocol} ({given}): {why}")

    try:
        dec = proto.decoder(**(context or {}))
    except ProtocolError as exc:
        raise UsageError(f"bad --set value: {exc}") from None
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:  # (a value of the wrong kind)
        raise bad_set(exc) from None
    batches: list = []
    for k, data in enumerate(parts):
        try:
            with np.errstate(all="ignore"):  # (what --set values make of the times is checked below)
                batches.extend(dec.feed(use_char, data, t_host_s=0.0))
        except ProtocolError as exc:
            where = f" (part {k + 1} of {len(parts)})" if len(parts) > 1 else ""
            hint = "; give decoder context with --set KEY=VALUE" if "context" in str(exc) else ""
            raise PelvimonError(f"cannot decode{where}: {exc}{hint}") from None
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise bad_set(exc) from None
    if given and any(not np.isfinite(b.t_s).all() for b in batches):
        raise bad_set(ValueError("the sample times it gives are not finite"))
    held = dec.pending_bytes
    if not batches and held:
        raise PelvimonError(
            f"the bytes end inside a payload ({held} byte{'s' if held != 1 else ''} held for the part that completes "
            "it); give every part of the payload, each with its own --hex, in order"
        )
    return use_char, batches


def run(args: argparse.Namespace) -> int:
    parts = [parse_hex(h) for h in args.hex]
    proto = _protocol(args.protocol)
    context = parse_context(args.set, proto.spec.context_keys, args.protocol)
    char, batches = decode(args.protocol, parts, args.char, context)
    assumed = assumed_context(args.protocol, context) if batches else {}
    if args.json:
        obj = batches_to_json(batches)
        if assumed:
            obj["assumed_context"] = assumed
        print(json.dumps(obj))
    else:
        print_table(args.protocol, char, batches)
        if assumed:
            print(
                "assumed, as the bytes do not say it (--set KEY=VALUE if the sensor was started otherwise): "
                + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in assumed.items())
            )
    return 0
