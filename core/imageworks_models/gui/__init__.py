"""The Streamlit GUI (optional extra ``gui``): ``imageworks-models gui`` starts it. Pages are thin scripts that call
render functions here; everything they do goes through the same core functions as the CLI.

May import ``present`` and every layer below it; never the CLI (which starts the GUI: ``cli`` is above it)."""
