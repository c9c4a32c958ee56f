// `import Tiefsee` (the CLI, the tests, library users) also brings in the lower layers;
// which module may import which is listed in README.md ("Modules").
@_exported import TiefseeFormats
@_exported import TiefseeTemplates
