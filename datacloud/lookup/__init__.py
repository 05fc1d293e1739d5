"""Online lookups over the curated tables: a person, an enterprise, a property status.

``keys`` normalises a looked-up number with the pipeline's own rules; ``snapshot`` holds one
curated version in memory with sorted key indexes; ``store`` serves the latest version and
swaps in a newer one after a publish; ``answers`` shapes and masks the answers; ``auth`` the
API keys and roles; ``audit`` the append-only audit trail; ``service`` ties them together for
``api`` (FastAPI) and ``cli`` (``datacloud lookup``). See docs/lookup.md.
"""
