/** The shapes of the server extension's answers (workbench/server/manager.py). */

export interface StageSummary {
  stage: string;
  title: string;
  notebook: string;
  status: string; // never run | done | queued | running
  recorded_at: string;
  outputs: Record<string, unknown>;
  headline: Record<string, unknown>;
  record_id: string;
  active_run: string | null;
}

export interface FailedCell {
  index: number;
  source: string;
  ename: string;
  evalue: string;
  traceback: string;
}

export interface StageRun {
  run_id: string;
  stage: string;
  project: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  notebook: string;
  error: string;
  failed_cell: FailedCell | null;
  progress: string[];
  outputs: Record<string, unknown>;
}

export interface ServiceStatus {
  name: string;
  url: string;
  healthy: boolean;
  managed: boolean;
  pid: number | null;
  detail: string;
}

export interface ServicesReply {
  services: ServiceStatus[];
  links: Record<string, string>;
  profile: string;
}

export interface NewProject {
  path: string;
  notebooks: string[];
  config: string;
}

/** A Ray job of the Jobs panel (manager.jobs: every submitted job on the cluster, newest first; others' jobs
 * have kind "ray job", no run and workbench false). */
export interface JobSummary {
  job_id: string;
  status: string; // PENDING | RUNNING | STOPPED | SUCCEEDED | FAILED
  run_id: string;
  experiment_id: string;
  trainer: string;
  kind: string;
  epochs: number;
  start_time: number; // seconds since the epoch, 0 when not started
  end_time: number;
  message: string;
  workbench: boolean; // submitted by the workbench (a training job with an MLflow run)
}

export interface JobLogs {
  job_id: string;
  log: string;
}

/** An MLflow run of the Runs panel (manager.runs). */
export interface RunSummary {
  run_id: string;
  run_name: string;
  status: string;
  start_time: number; // milliseconds since the epoch
  end_time: number | null;
  metrics: Record<string, number | null>;
  tags: Record<string, string>;
}

export interface RunsReply {
  experiment: string;
  experiment_id?: string;
  runs: RunSummary[];
}

/** A Ray Serve deployment of the Deployments panel (DeploymentInfo.to_dict). */
export interface Deployment {
  name: string;
  status: string; // RUNNING | DEPLOYING | UNHEALTHY | DEPLOY_FAILED | DELETING | NOT_STARTED
  url: string;
  model_uri: string;
  model_version: string;
  previous_versions: string[];
  replicas: Record<string, number>; // replica state -> count
  message: string;
}
