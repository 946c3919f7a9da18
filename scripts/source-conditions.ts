// Tests and benchmarks run the TypeScript sources, never a stale dist/: the "@isthmus/source"
// export condition (package.json `exports` of every package) resolves each package to its
// src/, which tsx runs. .mocharc.json and `npm run bench` give both to their own process;
// importing this file hands them to every process started afterwards (the `isthmus`
// launcher, kubesim, benchmark children) through NODE_OPTIONS, which children inherit.
// test/build/ checks dist/ itself.
const tsx = import.meta.resolve("tsx");
const flags = `--conditions=@isthmus/source --import=${tsx}`;
if (!process.env.NODE_OPTIONS?.includes(flags)) {
  process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, flags].filter(Boolean).join(" ");
}
