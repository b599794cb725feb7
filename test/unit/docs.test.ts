import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "../support/processes";

/**
 * The documents link to each other by relative paths and headings' anchors, and name the code's
 * files; files and sections move, so every such link and name is checked against what there is.
 */

const markdownFiles = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.md"], {
  cwd: ROOT,
  encoding: "utf8",
})
  .split("\n")
  .filter((file) => file !== "" && fs.existsSync(path.join(ROOT, file)));

/** Text outside fenced code blocks, where a link is a link. */
function prose(file: string): string {
  return fs.readFileSync(path.join(ROOT, file), "utf8").replace(/^```[\s\S]*?^```/gm, "");
}

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, "")
    .replace(/ /g, "-");
}

function anchorsOf(file: string): Set<string> {
  return new Set([...prose(file).matchAll(/^#+ (.*)$/gm)].map((match) => anchorOf(match[1] as string)));
}

/** Top-level directories of the repository: a path in a document that starts with one names a file of it. */
const topDirectories = new Set(
  execFileSync("git", ["ls-files"], { cwd: ROOT, encoding: "utf8" })
    .split("\n")
    .filter((file) => file.includes("/"))
    .map((file) => file.slice(0, file.indexOf("/"))),
);

/** The dated history names the files of its day; every other document names today's. */
const HISTORY = "docs/benchmark-history.md";

describe("the documents' links", () => {
  it("finds the documents", () => {
    expect(markdownFiles).toEqual(expect.arrayContaining(["README.md", "docs/glossary.md"]));
  });

  it.each(markdownFiles)("%s links to files and headings that exist", (file) => {
    const broken: string[] = [];
    for (const [, target] of prose(file).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target as string)) continue;
      const [linked, anchor] = (target as string).split("#") as [string, string | undefined];
      const resolved = linked === "" ? file : path.normalize(path.join(path.dirname(file), linked));
      if (!fs.existsSync(path.join(ROOT, resolved))) broken.push(`${target}: no file ${resolved}`);
      else if (anchor && resolved.endsWith(".md") && !anchorsOf(resolved).has(anchor)) {
        broken.push(`${target}: no heading with that anchor in ${resolved}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it.each(markdownFiles.filter((file) => file !== HISTORY))("%s names files of the repository that exist", (file) => {
    const text = fs.readFileSync(path.join(ROOT, file), "utf8");
    const missing = [...text.matchAll(/`([a-z][\w.-]*\/[\w./-]*)`/g)]
      .map((match) => (match[1] as string).replace(/\/$/, ""))
      .filter((named) => topDirectories.has(named.slice(0, named.indexOf("/"))))
      .filter((named) => !fs.existsSync(path.join(ROOT, named)));
    expect([...new Set(missing)]).toEqual([]);
  });
});
