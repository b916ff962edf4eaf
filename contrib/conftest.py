# contrib/plugin-template is a package to copy, not installed into the project's venv (it holds .not-installed);
# tests/contrib/test_contrib_plugin_template.py installs it into a fresh venv and runs its tests there.
collect_ignore = ["plugin-template"]
