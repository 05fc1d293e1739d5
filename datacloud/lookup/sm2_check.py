"""SM2 signature verification (GB/T 32918.2, SM3 digest) in Python integers: the check
``datacloud.lookup.proofs.verify`` makes before it asks GmSSL.

Why: the GmSSL build inside ``gmssl_pyx`` prints its C call trace (``sm2_fast_verify()``,
``sm2_verify_finish()``) to file descriptor 2 for every signature that does not verify. GmSSL's
``error_print()`` is a compile-time macro (``DEBUG`` is 1 in its ``debug.h``) with no runtime
switch, ``gmssl_pyx`` exposes none, and redirecting fd 2 around the call is process-wide (a
server's other threads would lose their stderr meanwhile). So the server decides here, without
printing: a signature this check refuses never reaches GmSSL; one it accepts is verified again
by GmSSL (both must agree), which therefore only ever sees valid signatures and stays silent.

The arithmetic is the textbook one (Jacobian coordinates, ``a = -3``), about 5 ms a verify on
one core; it handles public values only (the signature, the message, the public key), so it
needs no constant-time care. SM3 is ``hashlib``'s (OpenSSL 3). docs/decisions.md (proofs).
"""

from __future__ import annotations

import hashlib

P = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
A = P - 3
B = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)
N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
GX = int("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7", 16)
GY = int("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0", 16)

_Jac = tuple[int, int, int]
_INF: _Jac = (1, 1, 0)


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _double(p: _Jac) -> _Jac:
    x, y, z = p
    if z == 0 or y == 0:
        return _INF
    zz = z * z % P
    m = 3 * (x - zz) * (x + zz) % P  # a = -3
    yy = y * y % P
    s = 4 * x * yy % P
    x3 = (m * m - 2 * s) % P
    y3 = (m * (s - x3) - 8 * yy * yy) % P
    return x3, y3, 2 * y * z % P


def _add(p: _Jac, q: _Jac) -> _Jac:
    if p[2] == 0:
        return q
    if q[2] == 0:
        return p
    x1, y1, z1 = p
    x2, y2, z2 = q
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    h, r = (u2 - u1) % P, (s2 - s1) % P
    if h == 0:
        return _double(p) if r == 0 else _INF
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    return x3, y3, z1 * z2 * h % P


def _twin_mul(k1: int, p1: _Jac, k2: int, p2: _Jac) -> _Jac:
    """``k1 * p1 + k2 * p2`` (Shamir's trick: one pass of doublings)."""
    both = _add(p1, p2)
    acc = _INF
    for i in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        acc = _double(acc)
        b1, b2 = (k1 >> i) & 1, (k2 >> i) & 1
        if b1 and b2:
            acc = _add(acc, both)
        elif b1:
            acc = _add(acc, p1)
        elif b2:
            acc = _add(acc, p2)
    return acc


def _z(public: bytes, signer_id: bytes) -> bytes:
    entl = (len(signer_id) * 8).to_bytes(2, "big")
    curve = b"".join(v.to_bytes(32, "big") for v in (A, B, GX, GY))
    return sm3(entl + signer_id + curve + public)


def verify(public: bytes, message: bytes, r: int, s: int, signer_id: bytes) -> bool:
    """Whether ``(r, s)`` is an SM2 signature of ``message`` by the key ``public`` (``x || y``,
    64 bytes, or 65 with the 0x04 prefix) for ``signer_id``. Never raises on bad input."""
    if len(public) == 65 and public[0] == 4:
        public = public[1:]
    if len(public) != 64:
        return False
    x, y = int.from_bytes(public[:32], "big"), int.from_bytes(public[32:], "big")
    if not on_curve(x, y) or not (0 < r < N and 0 < s < N):
        return False
    t = (r + s) % N
    if t == 0:
        return False
    e = int.from_bytes(sm3(_z(public, signer_id) + message), "big")
    x1, _, z1 = _twin_mul(s, (GX, GY, 1), t, (x, y, 1))
    if z1 == 0:
        return False
    ax = x1 * pow(z1 * z1 % P, -1, P) % P
    return (e + ax) % N == r
