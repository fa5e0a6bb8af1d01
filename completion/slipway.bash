# bash completion for slipway: commands, flags, and from the pipeline in
# the current directory its task names (--only/--skip), parameter names and
# values (-p name=value, --env). Installed by `make install` into
# share/bash-completion/completions/slipway.
#
# The candidates come from `slipway complete`, which reads the pipeline the
# way `slipway plan` does (declarations only, nothing runs).
_slipway() {
  local cur words=() line=${COMP_LINE:0:COMP_POINT}
  # Split the line up to the cursor on blanks ourselves: COMP_WORDS would
  # cut `-p name=value` at the '='.
  read -r -a words <<< "$line"
  if [[ $line == *[[:blank:]] || ${#words[@]} -eq 0 ]]; then
    words+=("")
  fi
  cur=${words[${#words[@]}-1]}
  local out
  out=$(command slipway complete --bash -- "${words[@]:1}" 2>/dev/null) || return 0
  COMPREPLY=()
  local c files=""
  while IFS= read -r c; do
    if [[ $c == ":files" ]]; then
      files=1
    elif [[ -n $c ]]; then
      COMPREPLY+=("$c")
    fi
  done <<< "$out"
  if [[ -n $files ]]; then
    local f
    while IFS= read -r f; do COMPREPLY+=("$f"); done < <(compgen -f -- "$cur")
    compopt -o filenames 2>/dev/null
  fi
  # name= and item lists go on without a space
  if [[ ${#COMPREPLY[@]} -eq 1 && ( ${COMPREPLY[0]} == *= || ${COMPREPLY[0]} == *, ) ]]; then
    compopt -o nospace 2>/dev/null
  fi
  return 0
}
complete -F _slipway slipway
