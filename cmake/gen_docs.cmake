# Writes the man pages drover.1 and drover-worker.1 and the bash completions of both programs
# from the programs themselves: their hidden --help-man, --help-flags and --help-commands print
# the same option tables --help prints, so the pages cannot disagree with --help.
# Run by the build: cmake -DDROVER=... -DWORKER=... -DVERSION=... -DOUT=DIR -P gen_docs.cmake
# (cross builds that cannot run the programs would need a host build; drover has none).

function(run_help out)
  execute_process(COMMAND ${ARGN} OUTPUT_VARIABLE text RESULT_VARIABLE rc
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gen_docs: '${ARGN}' failed (${rc}): ${err}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY ${OUT}/man ${OUT}/completions)

# ---- drover(1): the top level, then each command as a subsection ----------------------------
run_help(top ${DROVER} --help-man)
run_help(cmds ${DROVER} --help-commands)
string(STRIP "${cmds}" cmds)
string(REPLACE "\n" ";" cmds "${cmds}")
set(page ".TH DROVER 1 \"\" \"drover ${VERSION}\" \"User Commands\"\n.SH NAME\n"
         "drover \\- coordinate bulk work across a fleet of workers, with Redis as the only shared state\n"
         "${top}.SH \"COMMAND DETAILS\"\n")
set(comp_cases "")
foreach(c ${cmds})
  run_help(sub ${DROVER} ${c} --help-man=sub)
  string(APPEND page "${sub}")
  run_help(flags ${DROVER} ${c} --help-flags)
  string(STRIP "${flags}" flags)
  string(REPLACE "\n" " " flags "${flags}")
  string(APPEND comp_cases "        ${c}) flags=\"${flags}\" ;;\n")
endforeach()
string(APPEND page ".SH \"SEE ALSO\"\n.BR drover\\-worker (1),\n.BR redis\\-server (1)\n")
file(WRITE ${OUT}/man/drover.1 "${page}")

# ---- drover-worker(1) ---------------------------------------------------------------------
run_help(wbody ${WORKER} --help-man)
file(WRITE ${OUT}/man/drover-worker.1
     ".TH DROVER\\-WORKER 1 \"\" \"drover ${VERSION}\" \"User Commands\"\n.SH NAME\n"
     "drover\\-worker \\- claim items of drover jobs from Redis and handle each once\n"
     "${wbody}.SH \"SEE ALSO\"\n.BR drover (1)\n")

# ---- bash completion: one file per program (bash-completion loads them by name) -----------
string(REPLACE ";" " " cmd_words "${cmds}")
run_help(common ${DROVER} --help-flags) # the flags that may come before the command
string(STRIP "${common}" common)
string(REPLACE "\n" " " common "${common}")
file(WRITE ${OUT}/completions/drover
"# bash completion for drover ${VERSION}, generated from its option tables (cmake/gen_docs.cmake)
_drover() {
    local cur=\${COMP_WORDS[COMP_CWORD]} cmd='' flags i
    local commands='${cmd_words}'
    for ((i = 1; i < COMP_CWORD; i++)); do
        case \" \$commands \" in *\" \${COMP_WORDS[i]} \"*) cmd=\${COMP_WORDS[i]}; break ;; esac
    done
    if [ -z \"\$cmd\" ]; then
        case \$cur in
            -*) COMPREPLY=(\$(compgen -W '${common} --version' -- \"\$cur\")) ;;
            *) COMPREPLY=(\$(compgen -W \"\$commands\" -- \"\$cur\")) ;;
        esac
        return
    fi
    case \$cur in -*) ;; *) return ;; esac # not a flag: bash's own file completion
    case \$cmd in
${comp_cases}        *) return ;;
    esac
    COMPREPLY=(\$(compgen -W \"\$flags\" -- \"\$cur\"))
}
complete -o default -F _drover drover
")
run_help(wflags ${WORKER} --help-flags)
string(STRIP "${wflags}" wflags)
string(REPLACE "\n" " " wflags "${wflags}")
file(WRITE ${OUT}/completions/drover-worker
"# bash completion for drover-worker ${VERSION}, generated from its option table (cmake/gen_docs.cmake)
_drover_worker() {
    local cur=\${COMP_WORDS[COMP_CWORD]} i
    for ((i = 1; i < COMP_CWORD; i++)); do
        [ \"\${COMP_WORDS[i]}\" = -- ] && return # the handler's command: bash's own completion
    done
    case \$cur in
        -*) COMPREPLY=(\$(compgen -W '${wflags}' -- \"\$cur\")) ;;
    esac
}
complete -o default -F _drover_worker drover-worker
")
