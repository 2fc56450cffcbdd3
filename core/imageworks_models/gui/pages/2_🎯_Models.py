"""The Models page: registry table, actions, downloader tabs (see imageworks_models.gui.models_page)."""

import streamlit as st

from imageworks_models.gui.models_page import render

st.set_page_config(page_title="Models · ImageWorks", page_icon="🎯", layout="wide")
render()
