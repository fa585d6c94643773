# Helpers the bench scripts share; each script sources this file.

# Installs Debian's package of each TOOL that is not on the PATH (the
# package has the tool's name).
need_tools() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "installing $tool"
            (apt-get install -y -qq "$tool" >/dev/null 2>&1) ||
                (apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null)
        fi
    done
}
