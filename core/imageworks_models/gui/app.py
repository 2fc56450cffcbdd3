"""ImageWorks Models: the GUI's home page (``streamlit run``'s main script; ``imageworks-models gui`` runs it)."""

import streamlit as st

st.set_page_config(page_title="ImageWorks Models", page_icon="🎯", layout="wide")
st.title("ImageWorks Models")
st.markdown("The registry of local model weights, what is installed, locked and live.")
st.page_link("pages/2_🎯_Models.py", label="Open the Models page", icon="🎯")
