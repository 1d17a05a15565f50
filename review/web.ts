import { join } from 'node:path';
import { projectRoot } from '../lib/paths.js';

/** Folder of the analyst page's static files (served as-is, from the sources, not from dist/). */
export const webRoot = () => join(projectRoot(), 'review', 'web');
