"""The built-in methods, one package each. psa.framework.methods finds them here; nothing
else lists them, and no module outside this folder imports one."""
