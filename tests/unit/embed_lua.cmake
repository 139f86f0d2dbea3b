# The include resolver of cmake/embed_lua.cmake and the parser of cmake/shared_defs.cmake, on
# small lua/ trees written here: what a script gets (each include once, after the ones it
# names) and what is refused, with which message.
#
#   cmake -DSRC_DIR=<source dir> -DWORK=<scratch dir> -P tests/unit/embed_lua.cmake
cmake_minimum_required(VERSION 3.18)

set(failures 0)
macro(fail msg)
  message(SEND_ERROR "FAIL ${case}: ${msg}")
  math(EXPR failures "${failures} + 1")
endmacro()

# tree(NAME PATH TEXT PATH TEXT ...): a fresh lua/ tree WORK/NAME with those files, plus a
# shared.def of its own.
function(tree name)
  set(dir ${WORK}/${name})
  file(REMOVE_RECURSE ${dir})
  file(MAKE_DIRECTORY ${dir}/lua/lib)
  file(WRITE ${dir}/shared.def "# test\nBATCH_MAX 7 c+lua\n\nkeys state pending\n")
  set(args ${ARGN})
  list(LENGTH args n)
  set(i 0)
  while(i LESS n)
    list(GET args ${i} path)
    math(EXPR i "${i} + 1")
    list(GET args ${i} text)
    math(EXPR i "${i} + 1")
    file(WRITE ${dir}/lua/${path} "${text}")
  endwhile()
endfunction()

# embed(NAME): runs the embed step on tree NAME; sets rc and err (its stderr, on one line).
macro(embed name)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -DLUA_DIR=${WORK}/${name}/lua -DOUT=${WORK}/${name}/out.c
            -DDEF=${WORK}/${name}/shared.def -P ${SRC_DIR}/cmake/embed_lua.cmake
    RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  string(REGEX REPLACE "[ \t\r\n]+" " " err "${err}")
endmacro()

# refused(NAME TEXT): the embed step fails on tree NAME, saying TEXT.
macro(refused name text)
  set(case ${name})
  embed(${name})
  if(rc EQUAL 0)
    fail("accepted, expected a refusal saying: ${text}")
  else()
    string(FIND "${err}" "${text}" at)
    if(at EQUAL -1)
      fail("refused without '${text}': ${err}")
    endif()
  endif()
endmacro()

# script_text(NAME SCRIPT OUT): the bytes embedded for SCRIPT, decoded from the generated C.
function(script_text name script out)
  file(READ ${WORK}/${name}/out.c c)
  if(NOT c MATCHES "lua_${script}\\[\\] = {([0-9a-fx,]*)0x00}")
    message(FATAL_ERROR "no array for ${script} in ${WORK}/${name}/out.c")
  endif()
  string(REGEX MATCHALL "0x[0-9a-f][0-9a-f]" bytes "${CMAKE_MATCH_1}")
  set(text "")
  foreach(b IN LISTS bytes)
    math(EXPR v "${b}")
    string(ASCII ${v} ch)
    string(APPEND text "${ch}")
  endforeach()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# A diamond: s includes a and c, both include b. Depth first, in the order named: b once,
# before a and c; shared, named by c and s, once, before c; the script last.
tree(diamond
  lib/b.lua "-- B\nlocal function bee() return 1 end\n"
  lib/a.lua "-- @include b\n-- A\nlocal function ay() return bee() end\n"
  lib/c.lua "-- @include shared\n-- @include b\n-- C\nlocal function cee() return bee() + BATCH_MAX end\n"
  s.lua "-- @include a\n-- @include c\n-- @include shared\n-- S\nreturn ay() + cee() + K_PENDING\n"
  _skipped.lua "-- not a script\n")
set(case diamond)
embed(diamond)
if(NOT rc EQUAL 0)
  fail("refused: ${err}")
else()
  script_text(diamond s got)
  set(want "-- B\nlocal function bee() return 1 end\n\n")
  string(APPEND want "-- @include b\n-- A\nlocal function ay() return bee() end\n\n")
  string(APPEND want "-- shared: generated from common/shared.def by cmake/shared_defs.cmake.\n")
  string(APPEND want "local BATCH_MAX = 7\nlocal K_STATE, K_PENDING = 1, 2\n\n")
  string(APPEND want "-- @include shared\n-- @include b\n-- C\n")
  string(APPEND want "local function cee() return bee() + BATCH_MAX end\n\n")
  string(APPEND want "-- @include a\n-- @include c\n-- @include shared\n-- S\n")
  string(APPEND want "return ay() + cee() + K_PENDING\n")
  if(NOT got STREQUAL want)
    fail("embedded text:\n${got}\nexpected:\n${want}")
  endif()
  file(READ ${WORK}/diamond/out.c c)
  if(c MATCHES "_skipped")
    fail("a file starting with _ was embedded as a script")
  endif()
endif()

tree(unknown s.lua "-- S\n-- @include nope\nreturn 1\n")
refused(unknown "lua/s.lua:2: unknown include 'nope' (no lua/lib/nope.lua)")

tree(unknown_in_lib lib/a.lua "-- @include nope\nlocal x = 1\n" s.lua "-- @include a\nreturn x\n")
refused(unknown_in_lib "lua/lib/a.lua:1: unknown include 'nope'")

tree(malformed s.lua "-- @include Bad-Name\nreturn 1\n")
refused(malformed "lua/s.lua:1: malformed include")

tree(cycle lib/a.lua "-- @include b\nlocal function ay() return bee end\n"
           lib/b.lua "-- @include a\nlocal function bee() return ay end\n"
           s.lua "-- @include a\nreturn ay()\n")
refused(cycle "include cycle: a -> b -> a")

# A name of an include the file does not reach: Lua would look it up as a global at run time.
tree(missing lib/a.lua "local function ay() return 1 end\n"
             lib/b.lua "local function bee() return 2 end\n"
             s.lua "-- @include a\nreturn ay() + bee()\n")
refused(missing "lua/s.lua: uses 'bee' of include 'b' without including it (add -- @include b)")

tree(unused lib/a.lua "local function ay() return 1 end\n"
            s.lua "-- @include a\n-- ay() is only mentioned here, and in 'ay'\nreturn 1\n")
refused(unused "lua/s.lua: includes 'a' but uses none of its names")

# A constant of shared.def written again by hand in an include (the drift this guards).
tree(redefined lib/a.lua "-- @include shared\nlocal BATCH_MAX = 1000\nlocal function ay() return BATCH_MAX end\n"
               s.lua "-- @include a\nreturn ay()\n")
refused(redefined "'BATCH_MAX' is defined by both 'shared' and 'a'")

tree(shadowed lib/a.lua "local function ay() return 1 end\n"
              s.lua "-- @include a\nlocal ay = 2\nreturn ay\n")
refused(shadowed "lua/s.lua: defines 'ay', which its include 'a' defines")

tree(bad_def s.lua "return 1\n")
file(WRITE ${WORK}/bad_def/shared.def "BATCH_MAX 7 c+lua\nBATCH 1000\nkeys state\n")
refused(bad_def "shared.def:2: expected NAME VALUE c|lua|c+lua")

tree(twice_def s.lua "return 1\n")
file(WRITE ${WORK}/twice_def/shared.def "BATCH_MAX 7 c+lua\nBATCH_MAX 8 c\nkeys state\n")
refused(twice_def "shared.def:2: BATCH_MAX defined twice")

if(failures GREATER 0)
  message(FATAL_ERROR "${failures} case(s) failed")
endif()
message(STATUS "embed_lua: all cases passed")
