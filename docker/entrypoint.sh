#!/bin/sh
# Container entrypoint: run a Procfile process by name, or any other command as given.
#
#   docker run IMAGE web|worker|beat|release [EXTRA ARGS...]
#       runs that process's command from $PROCFILE (default /app/Procfile) with `sh -c`,
#       so $PORT and friends expand; extra arguments are appended to the command.
#       A simple command is exec'd by that shell, so it ends up as the container's process.
#   docker run IMAGE some-command [ARGS...]
#       execs the command as-is (e.g. `portcullis billing run --period 2025-01`, `bash`).
# A single word that is neither a process name nor a command on PATH is an error that
# lists the process names (catches typos such as `wroker`).
set -eu

procfile=${PROCFILE:-/app/Procfile}

# Print the names defined in the Procfile, one a line.
process_names() {
    [ -r "$procfile" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
            '' | '#'*) continue ;;
        esac
        case ${line%%:*} in
            *[!A-Za-z0-9_-]* | '') continue ;;
        esac
        printf '%s\n' "${line%%:*}"
    done <"$procfile"
}

# Print the command of process "$1", or fail when the Procfile does not define it.
process_command() {
    [ -r "$procfile" ] || return 1
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
            "$1":*)
                cmd=${line#"$1":}
                # Trim leading blanks.
                cmd=${cmd#"${cmd%%[![:space:]]*}"}
                [ -n "$cmd" ] || return 1
                printf '%s\n' "$cmd"
                return 0
                ;;
        esac
    done <"$procfile"
    return 1
}

usage() {
    names=$(process_names | tr '\n' ' ')
    names=${names% }
    echo "usage: $(basename "$0") PROCESS [ARGS...] | COMMAND [ARGS...]" >&2
    echo "processes in $procfile: ${names:-(none)}" >&2
}

if [ "$#" -eq 0 ]; then
    usage
    exit 64
fi

name=$1
case $name in
    *[!A-Za-z0-9_-]* | -*) ;;  # not a process name: fall through to exec
    *)
        if cmd=$(process_command "$name"); then
            shift
            script=$cmd
            # A simple command replaces the shell (`exec`), so it receives the container's
            # signals (docker stop -> SIGTERM -> graceful shutdown) and its exit status.
            # Lists, pipelines and leading VAR=value assignments run as written.
            case ${cmd%%[[:space:]]*} in
                *=*) ;;
                *) case $cmd in
                       *[\;\&\|\(\)\`]*) ;;
                       *) script="exec $cmd" ;;
                   esac ;;
            esac
            if [ "$#" -gt 0 ]; then
                # Extra arguments are appended, each passed through unchanged.
                exec sh -c "$script"' "$@"' "$name" "$@"
            fi
            exec sh -c "$script"
        fi
        if [ "$#" -eq 1 ] && ! command -v "$name" >/dev/null 2>&1; then
            echo "$(basename "$0"): unknown process '$name'" >&2
            usage
            exit 64
        fi
        ;;
esac

exec "$@"
