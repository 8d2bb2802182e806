"""What the page can draw without a widget, learnt by asking it.

nbtrack's JupyterLab extension draws some outputs itself: a run card from a plain output
(``card.CARD_MIME``) costs a cell no comm, where the card widget costs one (~1.5 ms a
``%%track`` cell). On ``%load_ext nbtrack`` the kernel opens a comm to
:data:`FRONTEND_TARGET`; the extension answers with the MIME types it draws, and a page
without it (VS Code, nbclient) closes the comm unanswered, so its cards stay widgets.
Until the answer arrives (it is read between cells), cards are widgets too.
"""

from __future__ import annotations

from typing import Any

FRONTEND_TARGET = "nbtrack.frontend"

_drawn: set[str] = set()  # the MIME types the page said it draws


def ask_the_page() -> None:
    """Ask the page which of nbtrack's MIME types it draws."""
    from comm import create_comm

    create_comm(target_name=FRONTEND_TARGET, data={"asks": "draws"}).on_msg(_answered)


def _answered(message: dict[str, Any]) -> None:
    draws = message["content"]["data"].get("draws")
    if isinstance(draws, list):
        _drawn.update(str(mime) for mime in draws)


def page_draws(mime: str) -> bool:
    return mime in _drawn
