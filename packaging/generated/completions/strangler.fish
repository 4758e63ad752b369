# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_strangler_global_optspecs
    string join \n h/help V/version
end

function __fish_strangler_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_strangler_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_strangler_using_subcommand
    set -l cmd (__fish_strangler_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c strangler -n "__fish_strangler_needs_command" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_needs_command" -s V -l version -d 'Print version'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "serve" -d 'Run the proxy and the admin server'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "check" -d 'Validate configuration files; exit 0, or 1 with every error and its place'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "explain" -d 'Show which route, backend and side a request would get, and why'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "report" -d 'The shadow diff report from the store: may each route move on?'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "canary" -d 'Set a route\'s canary share, live and in routes.yaml'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "rollback" -d 'Send routes\' traffic back to legacy now, or restore a recorded version'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "history" -d 'Configuration versions (and the audit log)'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "rollout" -d 'Routes that promote themselves: status, start, pause, resume, abort, promote'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "status" -d 'Where every route stands: stage, canary, rollout, guard, diff verdict, share on new'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "replay" -d 'Send a route\'s recorded requests to a backend and compare the answers'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "upgrade" -d 'Replace the running proxy with a new process, dropping no connection (what `systemctl reload strangler` runs)'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "completions" -d 'Print a shell completion script for strangler'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "man" -d 'Print the manual page (or write one per subcommand into a directory)'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "schema" -d 'Print the JSON Schema of routes.yaml, for editors and CI'
complete -c strangler -n "__fish_strangler_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c strangler -n "__fish_strangler_using_subcommand serve" -s c -l config -d 'The configuration file (routes.yaml): watched, and reloaded when it changes' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l listen -d 'Listen here instead of the file\'s `listen` (to run several instances from one file)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l admin-listen -d 'Admin listener instead of the file\'s `admin.listen`' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l threads -d 'Proxy workers, each a single-threaded event loop with its own upstream connection pool (default: one per CPU)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l work-stealing -d 'Run each worker on a work-stealing runtime instead of a single-threaded one (measured slower here; kept for experiments)' -r -f -a "true\t''
false\t''"
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l pid-file -d 'Where this process writes its pid (default: beside the upgrade socket, named after the config\'s absolute path)' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l upgrade-sock -d 'The Unix socket an upgrade hands the listening sockets over on; the old and the new process must agree (default: in $TMPDIR, named after the config\'s absolute path)' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l watch-interval -d 'How often the config file is checked for changes' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l fleet-poll -d 'How often the store is polled for changes made by other proxies of the fleet. With PostgreSQL they are announced at once (LISTEN/NOTIFY) and the poll is only a safety net; with SQLite it is the only way' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l grace-period -d 'Time in-flight requests get to finish once the process stops accepting (after SIGTERM, or 5 s after an upgrade\'s SIGQUIT); requests still running then are cut. Set it above the slowest request you serve. Whole seconds (rounded up)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l shutdown-timeout -d 'Time the final step waits for worker threads to stop. Whole seconds (rounded up)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l shadow-queue -d 'Shadow jobs waiting to be sent; beyond this they are dropped (queue_full)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l shadow-concurrency -d 'Shadow copies in flight at once' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l shadow-memory -d 'Memory for queued and in-flight shadow jobs (bodies included)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l retention -d 'Diffs older than this are deleted from the store' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l retention-rows -d 'At most this many diffs are kept in the store (the oldest go first)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l header-timeout -d 'Time from a request\'s first byte to the end of its header; slower clients get 408 and are disconnected' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l max-inflight -d 'Requests in flight (all workers) above which new ones get a fast 503' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l store-queue -d 'Diff records waiting for the store; beyond this they are dropped (store)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l access-log-queue -d 'Access-log lines waiting for the writer; beyond this they are dropped and counted (strangler_access_log_dropped_total)' -r
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l fast-path -d 'Serve plain HTTP/1.1 exchanges (no body or a Content-Length body, to a route with no shadow, recording, retries or TLS upstream) on the owned fast path instead of Pingora\'s proxy engine; on by default, `--fast-path=false` sends everything to the engine. Everything else takes the engine either way' -r -f -a "true\t''
false\t''"
complete -c strangler -n "__fish_strangler_using_subcommand serve" -l upgrade -d 'Take over the listening sockets of the running instance (zero-downtime upgrade); then send SIGQUIT to the old process'
complete -c strangler -n "__fish_strangler_using_subcommand serve" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand check" -l format -d '`text`: `file: ok (...)`, or one `file:line:column: place: message` line per error. `json`: one document on stdout, `{"ok": bool, "files": [{"file", "ok", "errors": [{"line", "column", "place", "message"}], "warnings": [same as errors], "summary"}]}`' -r -f -a "text\t'`file: ok (…)` on stdout; errors on stderr, one per line'
json\t'One JSON document on stdout, nothing on stderr'"
complete -c strangler -n "__fish_strangler_using_subcommand check" -l resolve -d 'Also resolve every backend host name (as `serve` does)'
complete -c strangler -n "__fish_strangler_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c strangler -n "__fish_strangler_using_subcommand explain" -s c -l config -d 'The configuration file whose routes are asked' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand explain" -s H -l header -d 'A request header, "Name: value"; repeat for more' -r
complete -c strangler -n "__fish_strangler_using_subcommand explain" -l client-ip -d 'Client address, for `sticky: ip`' -r
complete -c strangler -n "__fish_strangler_using_subcommand explain" -l json -d 'Print JSON instead of text'
complete -c strangler -n "__fish_strangler_using_subcommand explain" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand report" -s c -l config -d 'The config file: gives the store URL and each route\'s threshold' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand report" -l store -d 'Read this store instead of the config\'s (sqlite://FILE or postgres://...)' -r
complete -c strangler -n "__fish_strangler_using_subcommand report" -l route -d 'Only this route' -r
complete -c strangler -n "__fish_strangler_using_subcommand report" -l tenant -d 'Only this tenant' -r
complete -c strangler -n "__fish_strangler_using_subcommand report" -l since -d 'How far back: 1h, 24h, 7d...' -r
complete -c strangler -n "__fish_strangler_using_subcommand report" -l source -d 'Only live shadow comparisons (shadow) or only replayed ones (replay); both, each in its own part, by default' -r -f -a "shadow\t'Live shadow comparisons only'
replay\t'Replayed comparisons (`strangler replay`) and replay runs only'"
complete -c strangler -n "__fish_strangler_using_subcommand report" -l time -d 'Write times (html, md) in UTC or in this machine\'s local time, with its offset; json has Unix milliseconds either way' -r -f -a "utc\t'Coordinated universal time, the same for every reader'
local\t'This machine\'s local time (TZ, else /etc/localtime), with its offset'"
complete -c strangler -n "__fish_strangler_using_subcommand report" -l format -d 'The form of the report' -r -f -a "html\t'A page with charts, the one the admin server serves at /report'
md\t'Markdown, for a pull request or a ticket'
json\t'The report\'s data (docs/report-json.md)'"
complete -c strangler -n "__fish_strangler_using_subcommand report" -s o -l output -d 'Write to this file instead of standard output' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c strangler -n "__fish_strangler_using_subcommand canary" -s c -l config -d 'The configuration file: its admin address and token variable are used, and it is the file edited' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand canary" -l admin -d 'The admin server of the proxy to change, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen' -r
complete -c strangler -n "__fish_strangler_using_subcommand canary" -l reason -d 'Why (recorded in history and audit)' -r
complete -c strangler -n "__fish_strangler_using_subcommand canary" -l timeout -d 'How long the proxy has to answer; a proxy that accepts the connection but does not answer in time is an error (exit 1)' -r
complete -c strangler -n "__fish_strangler_using_subcommand canary" -l offline -d 'Do not contact any proxy: edit the file and record the change in the store (exit 0). A proxy running on the file loads it at its next file check or restart'
complete -c strangler -n "__fish_strangler_using_subcommand canary" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l tenant -d 'Only this tenant: pin it to legacy (not verified on the metrics, which do not tell tenants apart)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l to -d 'Serve this recorded version again (see `strangler history`)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l reason -d 'Why (recorded in history and audit)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -s c -l config -d 'The configuration file: its admin address and token variable are used, and it is the file edited' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l admin -d 'The admin server of the proxy to change, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l timeout -d 'How long the proxy has to answer each request, and then how long the new side has to go quiet: exit 4 if it still receives requests then' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l all -d 'Every route'
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l no-verify -d 'Do not wait for the metrics to confirm (exit 0 once applied)'
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -l offline -d 'Do not contact any proxy: edit the file and record the change in the store (exit 0). A proxy running on the file loads it at its next file check or restart'
complete -c strangler -n "__fish_strangler_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand history" -s c -l config -d 'The configuration file: gives the store URL' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand history" -l store -d 'Read this store instead of the config\'s (sqlite://FILE or postgres://...)' -r
complete -c strangler -n "__fish_strangler_using_subcommand history" -l limit -d 'The most recent versions to list (and audit entries, with --audit)' -r
complete -c strangler -n "__fish_strangler_using_subcommand history" -l audit -d 'Also list the audit log'
complete -c strangler -n "__fish_strangler_using_subcommand history" -l json -d 'Print JSON instead of text'
complete -c strangler -n "__fish_strangler_using_subcommand history" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -f -a "status" -d 'Where each rollout stands (or one route\'s), why, and its gates\' figures'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -f -a "start" -d 'Start a route\'s rollout from its current canary'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -f -a "pause" -d 'Hold a running rollout at its step'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -f -a "resume" -d 'Continue a held rollout from the route\'s current canary'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -f -a "abort" -d 'Stop the rollout and send the route back to legacy (as a rollback)'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -f -a "promote" -d 'Take the next step now, gates skipped (audited as your decision)'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and not __fish_seen_subcommand_from status start pause resume abort promote help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from status" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from status" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from status" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from status" -l json -d 'Print JSON (the body of GET /rollouts) instead of text'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from start" -l reason -d 'Why (recorded in the rollout\'s state and the audit log)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from start" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from start" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from start" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from pause" -l reason -d 'Why (recorded in the rollout\'s state and the audit log)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from pause" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from pause" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from pause" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from resume" -l reason -d 'Why (recorded in the rollout\'s state and the audit log)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from resume" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from resume" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from resume" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from abort" -l reason -d 'Why (recorded in the rollout\'s state and the audit log)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from abort" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from abort" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from abort" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from abort" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from promote" -l reason -d 'Why (recorded in the rollout\'s state and the audit log)' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from promote" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from promote" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from promote" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from promote" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from help" -f -a "status" -d 'Where each rollout stands (or one route\'s), why, and its gates\' figures'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start a route\'s rollout from its current canary'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from help" -f -a "pause" -d 'Hold a running rollout at its step'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Continue a held rollout from the route\'s current canary'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from help" -f -a "abort" -d 'Stop the rollout and send the route back to legacy (as a rollback)'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from help" -f -a "promote" -d 'Take the next step now, gates skipped (audited as your decision)'
complete -c strangler -n "__fish_strangler_using_subcommand rollout; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c strangler -n "__fish_strangler_using_subcommand status" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand status" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand status" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand status" -l json -d 'Print JSON (the body of GET /status) instead of the table'
complete -c strangler -n "__fish_strangler_using_subcommand status" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l route -d 'The route whose recordings are replayed (it needs a record: block to have any)' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l since -d 'Recordings made within this span before now: 24h, 30m, 7d' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l to -d 'Where to send them: new (the route\'s new side), legacy, or the name of a backend in the file' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l rate -d 'Requests per second; 0 for as fast as --concurrency allows' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l limit -d 'At most this many recordings (the oldest first)' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l concurrency -d 'Requests in flight at once' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -s c -l config -d 'The configuration file; its admin address and token variable are used unless --admin says otherwise' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l admin -d 'The admin server of the proxy to ask, e.g. http://10.0.0.3:9901, instead of the config\'s admin.listen. Without a readable config the token is taken from STRANGLER_ADMIN_TOKEN' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l timeout -d 'How long the proxy has to answer' -r
complete -c strangler -n "__fish_strangler_using_subcommand replay" -l json -d 'Print the final run as JSON instead of the summary'
complete -c strangler -n "__fish_strangler_using_subcommand replay" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand upgrade" -l pid-file -d 'The running process\'s pid file (its `serve --pid-file`)' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand upgrade" -s c -l config -d 'Or: the config the running process serves, whose default pid file is then read' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand upgrade" -l timeout -d 'How long the new process has to take over and be ready' -r
complete -c strangler -n "__fish_strangler_using_subcommand upgrade" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand completions" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand man" -l dir -d 'Write strangler.1 and a strangler-SUBCOMMAND.1 page per subcommand here instead of printing strangler.1' -r -F
complete -c strangler -n "__fish_strangler_using_subcommand man" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand schema" -s h -l help -d 'Print help'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "serve" -d 'Run the proxy and the admin server'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "check" -d 'Validate configuration files; exit 0, or 1 with every error and its place'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "explain" -d 'Show which route, backend and side a request would get, and why'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "report" -d 'The shadow diff report from the store: may each route move on?'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "canary" -d 'Set a route\'s canary share, live and in routes.yaml'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "rollback" -d 'Send routes\' traffic back to legacy now, or restore a recorded version'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "history" -d 'Configuration versions (and the audit log)'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "rollout" -d 'Routes that promote themselves: status, start, pause, resume, abort, promote'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "status" -d 'Where every route stands: stage, canary, rollout, guard, diff verdict, share on new'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "replay" -d 'Send a route\'s recorded requests to a backend and compare the answers'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "upgrade" -d 'Replace the running proxy with a new process, dropping no connection (what `systemctl reload strangler` runs)'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "completions" -d 'Print a shell completion script for strangler'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "man" -d 'Print the manual page (or write one per subcommand into a directory)'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "schema" -d 'Print the JSON Schema of routes.yaml, for editors and CI'
complete -c strangler -n "__fish_strangler_using_subcommand help; and not __fish_seen_subcommand_from serve check explain report canary rollback history rollout status replay upgrade completions man schema help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c strangler -n "__fish_strangler_using_subcommand help; and __fish_seen_subcommand_from rollout" -f -a "status" -d 'Where each rollout stands (or one route\'s), why, and its gates\' figures'
complete -c strangler -n "__fish_strangler_using_subcommand help; and __fish_seen_subcommand_from rollout" -f -a "start" -d 'Start a route\'s rollout from its current canary'
complete -c strangler -n "__fish_strangler_using_subcommand help; and __fish_seen_subcommand_from rollout" -f -a "pause" -d 'Hold a running rollout at its step'
complete -c strangler -n "__fish_strangler_using_subcommand help; and __fish_seen_subcommand_from rollout" -f -a "resume" -d 'Continue a held rollout from the route\'s current canary'
complete -c strangler -n "__fish_strangler_using_subcommand help; and __fish_seen_subcommand_from rollout" -f -a "abort" -d 'Stop the rollout and send the route back to legacy (as a rollback)'
complete -c strangler -n "__fish_strangler_using_subcommand help; and __fish_seen_subcommand_from rollout" -f -a "promote" -d 'Take the next step now, gates skipped (audited as your decision)'
