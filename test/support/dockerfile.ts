import { execFileSync, execSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./processes";

/**
 * Runs a Dockerfile's steps without Docker: each stage's WORKDIR is a directory of its own, COPY
 * copies from the build context (the repository's files minus .dockerignore) or from an earlier
 * stage, RUN runs in the stage's directory with its ENV. A RUN of apt-get installs Debian
 * packages into the image's system: here they are the machine's, checked to be installed. Enough
 * for this project's Dockerfile: it proves the steps the image build runs, on this machine's Node.
 */

export interface Instruction {
  op: string;
  args: string;
}

export interface Stage {
  name: string;
  from: string;
  workdir: string;
  env: Record<string, string>;
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  dir: string;
}

export function parseDockerfile(text: string): Instruction[] {
  const joined = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [op = "", ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
}

/** The build context: files git knows (committed or not, never ignored), minus .dockerignore's. */
function contextFiles(): string[] {
  const ignored = fs
    .readFileSync(path.join(ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"))
    .map((pattern) => new RegExp(`^${pattern.replace(/\./g, "\\.").replace(/\*/g, "[^/]*")}(/|$)`));
  return execSync("git ls-files --cached --others --exclude-standard", { cwd: ROOT, encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .filter((file) => fs.existsSync(path.join(ROOT, file)))
    .filter((file) => !ignored.some((pattern) => pattern.test(file)));
}

function copyInto(files: string[], source: string, target: string): void {
  const prefix = source.replace(/^\.\//, "").replace(/\/$/, "");
  if (files.includes(prefix)) {
    const destination = target.endsWith("/") ? path.join(target, path.basename(prefix)) : target;
    fs.mkdirSync(path.dirname(destination), { recursive: true });
    fs.copyFileSync(path.join(ROOT, prefix), destination);
    return;
  }
  const inside = files.filter((file) => file.startsWith(`${prefix}/`));
  if (inside.length === 0) throw new Error(`COPY ${source}: not in the build context`);
  for (const file of inside) {
    const destination = path.join(target, path.relative(prefix, file));
    fs.mkdirSync(path.dirname(destination), { recursive: true });
    fs.copyFileSync(path.join(ROOT, file), destination);
  }
}

/** The packages of a RUN's `apt-get install`. */
export function debianPackages(run: string): string[] {
  return [...run.matchAll(/apt-get install ([^&;]*)/g)].flatMap((match) =>
    (match[1] as string).split(/\s+/).filter((word) => word && !word.startsWith("-")),
  );
}

function requireInstalled(name: string): void {
  let status = "";
  try {
    status = execFileSync("dpkg-query", ["-W", "--showformat=$" + "{Status}", name], {
      encoding: "utf8",
      stdio: "pipe",
    });
  } catch {
    // not known to dpkg at all
  }
  if (!status.endsWith("ok installed")) {
    throw new Error(`the image installs the Debian package ${name}: install it here too (apt-get install ${name})`);
  }
}

export function buildWithoutDocker(workRoot: string, log: (line: string) => void = () => undefined): Stage[] {
  const instructions = parseDockerfile(fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8"));
  const context = contextFiles();
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  for (const { op, args } of instructions) {
    if (op === "FROM") {
      const [from = "", , name] = args.split(/\s+/);
      stage = {
        name: name ?? String(stages.length),
        from,
        workdir: "/",
        env: {},
        dir: path.join(workRoot, String(stages.length)),
      };
      fs.mkdirSync(stage.dir, { recursive: true });
      stages.push(stage);
      continue;
    }
    if (!stage) throw new Error(`${op} before FROM`);
    if (op === "WORKDIR") stage.workdir = args;
    else if (op === "USER") stage.user = args;
    else if (op === "CMD") stage.cmd = JSON.parse(args);
    else if (op === "ENTRYPOINT") stage.entrypoint = JSON.parse(args);
    else if (op === "RUN" && args.startsWith("apt-get ")) {
      for (const name of debianPackages(args)) requireInstalled(name);
      log(`RUN ${args} (installed on this machine)`);
    } else if (op === "ENV") {
      for (const [, key, value] of args.matchAll(/(\w+)=(\S+)/g)) stage.env[key as string] = value as string;
    } else if (op === "COPY") {
      const words = args.split(/\s+/);
      const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
      const paths = words.filter((w) => !w.startsWith("--"));
      const rawTarget = paths.pop() as string;
      const target = path.join(stage.dir, rawTarget.replace(/^\.\/?/, "")) + (rawTarget.endsWith("/") ? "/" : "");
      for (const source of paths) {
        if (from) {
          const earlier = stages.find((s) => s.name === from) as Stage;
          const sourcePath = path.join(earlier.dir, path.relative(earlier.workdir, source));
          fs.cpSync(sourcePath, target, { recursive: true, verbatimSymlinks: true });
        } else {
          copyInto(context, source, paths.length > 1 || target.endsWith("/") ? `${target}/` : target);
        }
      }
      log(`COPY ${args}`);
    } else if (op === "RUN") {
      log(`RUN ${args}`);
      execFileSync("sh", ["-c", args], {
        cwd: stage.dir,
        // a build's environment is the image's, not this process's (npm's own variables aside)
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...stage.env },
        stdio: "pipe",
        maxBuffer: 64 * 1024 * 1024,
      });
    }
  }
  for (const built of stages)
    built.env.PATH = (built.env.PATH ?? "").replace(/\/app/g, built.dir).replace("$PATH", process.env.PATH ?? "");
  return stages;
}
