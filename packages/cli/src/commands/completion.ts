// `isthmus completion bash|zsh|fish`: shell completion scripts generated from the command
// tree itself, so that every command and option (and each one added later) completes.
import { type Command, InvalidArgumentError } from "commander";

interface Node {
  /** Words from the program to this command, e.g. ["cluster", "create"]; [] for the program. */
  path: string[];
  description: string;
  subcommands: { name: string; description: string }[];
  /** Every spelling of every option: --long and -s. */
  options: string[];
  /** The spellings of options that take a value (the next word is not a command). */
  valued: string[];
}

function walk(command: Command, path: string[], out: Node[]): Node[] {
  const options = command.options;
  out.push({
    path,
    description: command.description(),
    subcommands: command.commands.map((c) => ({ name: c.name(), description: c.description() })),
    options: [...options.flatMap((o) => [o.long, o.short]), "--help"].filter(
      (f): f is string => f !== undefined,
    ),
    valued: options
      .filter((o) => o.required || o.optional)
      .flatMap((o) => [o.long, o.short])
      .filter((f): f is string => f !== undefined),
  });
  for (const sub of command.commands) walk(sub, [...path, sub.name()], out);
  return out;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const firstLine = (s: string) => (s.split("\n")[0] ?? "").replace(/[:;]/g, " ").slice(0, 80);

/** Bash: `_isthmus` walks the words typed so far to the command they name, then completes
 * its subcommands or options; after an option that takes a value, file names. */
function bash(nodes: Node[]): string {
  const cases = nodes
    .map((n) => {
      const key = n.path.join(" ");
      return [
        `    ${quote(key)})`,
        `      subcommands=${quote(n.subcommands.map((s) => s.name).join(" "))}`,
        `      options=${quote(n.options.join(" "))}`,
        `      valued=${quote(` ${n.valued.join(" ")} `)} ;;`,
      ].join("\n");
    })
    .join("\n");
  return `# bash completion for isthmus; load with: source <(isthmus completion bash)
_isthmus_node() {
  case "$1" in
${cases}
    *) subcommands=""; options=""; valued=" " ;;
  esac
}

_isthmus() {
  local cur prev key word i subcommands options valued
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  key=""
  _isthmus_node "$key"
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    if [[ "$word" == -* ]]; then
      [[ "$valued" == *" $word "* ]] && ((i++))
      continue
    fi
    if [[ " $subcommands " == *" $word "* ]]; then
      key="\${key:+$key }$word"
      _isthmus_node "$key"
    fi
  done
  if [[ "$prev" == -* && "$valued" == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
  fi
}
complete -o default -F _isthmus isthmus
`;
}

/** Zsh: the same walk over \`words\`, with descriptions for commands. */
function zsh(nodes: Node[]): string {
  const cases = nodes
    .map((n) => {
      const key = n.path.join(" ");
      const subs = n.subcommands.map((s) => quote(`${s.name}:${firstLine(s.description)}`));
      return [
        `    ${quote(key)})`,
        `      subcommands=(${subs.join(" ")})`,
        `      options=(${n.options.map(quote).join(" ")})`,
        `      valued=(${n.valued.map(quote).join(" ")}) ;;`,
      ].join("\n");
    })
    .join("\n");
  return `#compdef isthmus
# zsh completion for isthmus; load with: source <(isthmus completion zsh)
# (after compinit), or save as _isthmus in a folder of $fpath.
_isthmus_node() {
  case "$1" in
${cases}
    *) subcommands=(); options=(); valued=() ;;
  esac
}

_isthmus() {
  local key="" word i
  local -a subcommands options valued names
  _isthmus_node "$key"
  for ((i = 2; i < CURRENT; i++)); do
    word="\${words[i]}"
    if [[ "$word" == -* ]]; then
      (( \${valued[(Ie)$word]} )) && ((i++))
      continue
    fi
    names=(\${subcommands%%:*})
    if (( \${names[(Ie)$word]} )); then
      key="\${key:+$key }$word"
      _isthmus_node "$key"
    fi
  done
  if (( \${valued[(Ie)\${words[CURRENT-1]}]} )); then
    _files
  elif [[ "\${words[CURRENT]}" == -* ]]; then
    compadd -- $options
  else
    _describe 'command' subcommands
  fi
}

if (( $+functions[compdef] )); then
  compdef _isthmus isthmus
fi
`;
}

/** Fish: one \`complete\` line per command and option, conditioned on the words seen. */
function fish(nodes: Node[]): string {
  const lines = [
    "# fish completion for isthmus; load with: isthmus completion fish | source",
    "complete -c isthmus -f",
  ];
  for (const n of nodes) {
    const seen = n.path.map((w) => `__fish_seen_subcommand_from ${w}`);
    const subNames = n.subcommands.map((s) => s.name).join(" ");
    const here =
      n.path.length === 0
        ? "__fish_use_subcommand"
        : [...seen, ...(subNames ? [`not __fish_seen_subcommand_from ${subNames}`] : [])].join(
            "; and ",
          );
    for (const s of n.subcommands)
      lines.push(
        `complete -c isthmus -n ${quote(here)} -a ${s.name} -d ${quote(firstLine(s.description))}`,
      );
    const optionCondition = n.path.length === 0 ? "__fish_use_subcommand" : seen.join("; and ");
    for (const flag of n.options) {
      const spec = flag.startsWith("--") ? `-l ${flag.slice(2)}` : `-s ${flag.slice(1)}`;
      const value = n.valued.includes(flag) ? " -r -F" : "";
      lines.push(`complete -c isthmus -n ${quote(optionCondition)} ${spec}${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

const SHELLS = { bash, zsh, fish } as const;

export function registerCompletionCommand(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script: bash, zsh or fish")
    .argument("<shell>", "bash, zsh or fish", (value: string) => {
      if (!(value in SHELLS)) throw new InvalidArgumentError("expected bash, zsh or fish");
      return value as keyof typeof SHELLS;
    })
    .addHelpText(
      "after",
      "\nLoad it with:\n  bash: source <(isthmus completion bash)   (or save it under /etc/bash_completion.d/)\n  zsh:  source <(isthmus completion zsh)    (after compinit)\n  fish: isthmus completion fish | source",
    )
    .action((shell: keyof typeof SHELLS) => {
      process.stdout.write(SHELLS[shell](walk(program, [], [])));
    });
}
