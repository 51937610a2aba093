from jobs_client.cli import main

raise SystemExit(main())
