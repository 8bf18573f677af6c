/**
 * Finding tasks by name: YAML files under --include-path directories and the built-in copies of
 * the harness's task files, indexed by task, group and tag names (as the harness's TaskManager
 * does). `--tasks` also takes paths to YAML files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { diskSource, isGroupConfig, readYamlConfig, validateGroupConfig, validateTaskConfig, type GroupConfig, type TaskConfig, type TaskSource } from './config.js';
import { TaskError } from './errors.js';

interface Entry {
  file: string;
  source: TaskSource;
  raw: Record<string, unknown>;
}

/** A group and what it aggregates. */
export interface GroupNode {
  name: string;
  alias?: string;
  config: GroupConfig;
  /** Task names and nested groups, in order. */
  children: Array<string | GroupNode>;
}

export interface ResolvedTasks {
  tasks: TaskConfig[];
  groups: GroupNode[];
  /** Tasks or groups that could not be read (the others still run). */
  errors: TaskError[];
}

function walk(dir: string, out: string[]): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.yaml') || e.name.endsWith('.yml')) out.push(p);
  }
}

export class TaskRegistry {
  private readonly tasks = new Map<string, Entry>();
  private readonly groups = new Map<string, Entry>();
  private readonly tags = new Map<string, string[]>();

  /** Index every YAML under `dir` (files that fail to parse are skipped here and reported when named). */
  addDirectory(dir: string): void {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new TaskError(undefined, 'include_path', `not a directory: ${dir}`);
    const files: string[] = [];
    walk(dir, files);
    for (const f of files) this.addFile(f, diskSource);
  }

  /** Index in-memory files (the built-in tasks), keyed by virtual path. */
  addFiles(files: Record<string, string>): void {
    const source: TaskSource = {
      read: (f) => {
        const t = files[f];
        if (t === undefined) throw new Error('no such built-in file');
        return t;
      },
      exists: (f) => f in files,
    };
    for (const f of Object.keys(files)) if (f.endsWith('.yaml')) this.addFile(f, source);
  }

  private addFile(file: string, source: TaskSource): void {
    let raw: Record<string, unknown>;
    try {
      raw = readYamlConfig(file, source);
    } catch {
      return;
    }
    if (isGroupConfig(raw)) {
      this.groups.set(raw.group as string, { file, source, raw });
      return;
    }
    if (typeof raw.task !== 'string') return;
    const name = raw.task;
    this.tasks.set(name, { file, source, raw });
    const tags = raw.tag ?? (typeof raw.group === 'string' ? raw.group : undefined);
    for (const t of Array.isArray(tags) ? tags : tags !== undefined ? [tags] : []) {
      const list = this.tags.get(String(t)) ?? [];
      if (!list.includes(name)) list.push(name);
      this.tags.set(String(t), list);
    }
  }

  has(name: string): boolean {
    return this.tasks.has(name) || this.groups.has(name) || this.tags.has(name);
  }

  names(): { tasks: string[]; groups: string[]; tags: string[] } {
    return { tasks: [...this.tasks.keys()].sort(), groups: [...this.groups.keys()].sort(), tags: [...this.tags.keys()].sort() };
  }

  /** Resolve names / YAML paths to task configs and group trees. */
  resolve(specs: string[]): ResolvedTasks {
    const out: ResolvedTasks = { tasks: [], groups: [], errors: [] };
    const seen = new Set<string>();
    const addTask = (cfg: TaskConfig): void => {
      if (seen.has(cfg.task)) return;
      seen.add(cfg.task);
      out.tasks.push(cfg);
    };
    const expand = (name: string, trail: string[]): string | GroupNode | undefined => {
      if (trail.includes(name)) throw new TaskError(name, 'task', `group cycle: ${[...trail, name].join(' -> ')}`);
      const g = this.groups.get(name);
      if (g) return this.groupNode(validateGroupConfig(g.raw), trail, expand, addTask, out);
      const t = this.tasks.get(name);
      if (t) {
        addTask(validateTaskConfig(t.raw));
        return name;
      }
      const tagged = this.tags.get(name);
      if (tagged) {
        for (const n of tagged) expand(n, [...trail, name]);
        return undefined;
      }
      throw new TaskError(name, undefined, 'no such task, group or tag (give a YAML path or use --include-path DIR)');
    };
    for (const spec of specs) {
      try {
        if (/\.ya?ml$/.test(spec)) {
          const file = path.resolve(spec);
          if (!fs.existsSync(file)) throw new TaskError(undefined, undefined, `no such task file: ${spec}`);
          this.addDirectorySafe(path.dirname(file));
          const raw = readYamlConfig(file);
          if (isGroupConfig(raw)) {
            const node = this.groupNode(validateGroupConfig(raw), [], expand, addTask, out);
            out.groups.push(node);
          } else addTask(validateTaskConfig(raw));
          continue;
        }
        const r = expand(spec, []);
        if (r && typeof r !== 'string') out.groups.push(r);
      } catch (e) {
        if (!(e instanceof TaskError)) throw e;
        out.errors.push(e);
      }
    }
    return out;
  }

  private addDirectorySafe(dir: string): void {
    try {
      this.addDirectory(dir);
    } catch {
      // the file itself is read directly
    }
  }

  private groupNode(
    cfg: GroupConfig,
    trail: string[],
    expand: (name: string, trail: string[]) => string | GroupNode | undefined,
    addTask: (c: TaskConfig) => void,
    out: ResolvedTasks,
  ): GroupNode {
    const node: GroupNode = { name: cfg.group, config: cfg, children: [] };
    if (cfg.group_alias) node.alias = cfg.group_alias;
    for (const item of cfg.task) {
      try {
        if (typeof item === 'string') {
          const tagged = this.tags.get(item);
          if (tagged && !this.tasks.has(item) && !this.groups.has(item)) {
            for (const n of tagged) {
              const r = expand(n, [...trail, cfg.group]);
              if (r !== undefined) node.children.push(r);
            }
          } else {
            const r = expand(item, [...trail, cfg.group]);
            if (r !== undefined) node.children.push(r);
          }
        } else {
          // An inline task config (possibly `task: NAME` + overrides of a known task).
          const base = typeof item.task === 'string' ? this.tasks.get(item.task)?.raw : undefined;
          const tc = validateTaskConfig({ ...(base ?? {}), ...item, __dir: (item.__dir as string | undefined) ?? cfg.__dir });
          addTask(tc);
          node.children.push(tc.task);
        }
      } catch (e) {
        if (!(e instanceof TaskError)) throw e;
        out.errors.push(e);
      }
    }
    return node;
  }
}
