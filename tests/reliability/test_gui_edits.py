"""Item 13 of issue 17 (RELIABILITY B16): a GUI edit never reverts another save. Two tabs of the Models page
(two Streamlit sessions) edit one entry: after Reload the form shows the other tab's save, and a save based on
the older version is refused with the file unchanged."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit", reason="the GUI extra is not installed")

from plugintests import use_tests  # noqa: E402

use_tests("gui")

from test_gui_page import BF16, edit_key, env, ok, open_edit, page, save, texts  # noqa: E402,F401 - env is a fixture


def test_b16_a_stale_tab_cannot_revert_another_tabs_save_and_reload_resets_its_form(env):  # noqa: F811
    tab_a = open_edit(page(), BF16)
    tab_b = open_edit(page(), BF16)

    tab_b.text_input(key=edit_key(BF16, "display_name")).input("Saved In Tab B")
    tab_b = save(tab_b)
    assert not tab_b.error, texts(tab_b.error)
    assert env.curated(BF16)["display_name"] == "Saved In Tab B"

    before = env.snapshot()
    tab_a.text_input(key=edit_key(BF16, "roles")).input("chat, writer")  # tab A still holds the old form
    tab_a = save(tab_a)
    assert "changed since you opened it" in " ".join(texts(tab_a.error))
    assert env.snapshot() == before  # B's save stands, byte for byte

    tab_a = ok(tab_a.button(key="reload").click().run())
    tab_a = ok(tab_a.button(key="edit_open").click().run())  # Reload closed the dialog; open it afresh
    assert tab_a.text_input(key=edit_key(BF16, "display_name")).value == "Saved In Tab B"  # the form was reset
    tab_a.text_input(key=edit_key(BF16, "roles")).input("chat, writer")
    tab_a = save(tab_a)
    assert not tab_a.error, texts(tab_a.error)
    saved = env.curated(BF16)
    assert saved["roles"] == ["chat", "writer"] and saved["display_name"] == "Saved In Tab B"
