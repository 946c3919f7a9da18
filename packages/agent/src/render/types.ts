import type { KubeObject } from "../kube-object.js";

/** Why one object of an intent could not be rendered or applied. */
export interface ObjectError {
  /** Intent name. */
  intentName: string;
  /** "Kind namespace/name". */
  object: string;
  message: string;
}

/** The objects of one intent; objects listed in `errors` were not rendered. */
export interface RenderResult {
  intentName: string;
  intentVersion: string;
  objects: KubeObject[];
  errors: ObjectError[];
}
