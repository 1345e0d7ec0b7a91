#!/usr/bin/env bash
# Writes compose.txt: every command and flag of `docker compose`, walked from its own --help
# (v2.40.3, as ../shared/bench/setup.sh installs it; --help needs no daemon).
#
# One line per command (`command<TAB>`) and one per flag
# (`command<TAB>--long<TAB>-s<TAB>type`); the command is the path under `docker compose`,
# empty for the global flags; the type is cobra's (`string`, `stringArray`, `int`, …), empty
# for a boolean switch. Usage: tests/cli_reference/generate.sh [DOCKER] > compose.txt
set -euo pipefail
docker=${1:-docker}
want=v2.40.3
got=$($docker compose version --short)
[ "v$got" = "$want" ] || [ "$got" = "$want" ] || { echo "need docker compose $want, found $got" >&2; exit 1; }

# Flags of one help text, as `--long<TAB>-s<TAB>type` lines.
flags() {
    awk '
        /^[A-Za-z].*:$/ { section = $0; next }
        section == "Options:" && /^(  -[A-Za-z], |      )--[A-Za-z0-9-]+( |$)/ {
            line = $0; sub(/^ +/, "", line)
            short = ""
            if (line ~ /^-[A-Za-z], /) { short = substr(line, 1, 2); line = substr(line, 5) }
            split(line, words, " ")
            long = words[1]; type = ""
            # The word after the flag is its type when one column space separates them.
            if (words[2] != "" && index(line, long " " words[2]) == 1 && words[2] ~ /^[a-z][A-Za-z0-9]*$/ \
                && substr(line, length(long) + length(words[2]) + 2, 2) ~ /^( |$)/) type = words[2]
            print long "\t" short "\t" type
        }'
}

# Subcommand names of one help text.
commands() {
    awk '/^[A-Za-z].*:$/ { section = $0; next }
         (section == "Commands:" || section == "Management Commands:") && /^  [a-z]/ { print $1 }'
}

walk() {
    local path=$1 help
    # shellcheck disable=SC2086
    help=$($docker compose $path --help)
    printf '%s\t\n' "$path"
    flags <<<"$help" | sed "s/^/$path\t/"
    local sub
    for sub in $(commands <<<"$help"); do
        walk "${path:+$path }$sub"
    done
}

walk ""
